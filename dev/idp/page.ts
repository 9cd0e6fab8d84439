/**
 * The demo page: pick a user, get their identity token from this development provider, connect
 * with the real ably-js through an authCallback that fetches a fresh identity token and calls the
 * auth endpoint's /auth, and watch the issued Ably JWT, its renewal, and a ban turning into a 403.
 */
export function demoPage(authUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ably-edge-auth · local demo</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 960px; margin: 2rem auto; padding: 0 1rem; color: #1d1d1f; }
  h1 { font-size: 1.4rem; } h2 { font-size: 1.05rem; margin-top: 1.6rem; }
  .note { background: #fff7e0; border: 1px solid #f0d080; padding: .6rem .9rem; border-radius: 6px; }
  .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
  .card { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .9rem; min-height: 4rem; }
  pre { white-space: pre-wrap; word-break: break-all; margin: 0; font-size: 13px; }
  button, select, input { font: inherit; padding: .3rem .7rem; margin: .2rem .3rem .2rem 0; }
  .ok { color: #0a7d32; } .bad { color: #b3261e; } .muted { color: #666; }
  #log { font: 12px/1.4 ui-monospace, monospace; max-height: 14rem; overflow: auto; background: #f6f6f6; padding: .5rem; }
</style>
</head>
<body>
<h1>ably-edge-auth · local demo</h1>
<p class="note">Everything here runs on this machine: this page and the development identity provider on
<code>127.0.0.1:8788</code>, the auth endpoint on <code id="auth-url"></code>. Without network and a real Ably key the
connection to Ably itself cannot succeed; the token leg (identity token → <code>/auth</code> → Ably JWT) works
offline. Put your own key in <code>.dev.vars</code> (<code>ABLY_API_KEY</code>) to connect for real.</p>

<h2>1 · Pick a user</h2>
<select id="user">
  <option value="alice">alice</option>
  <option value="bob">bob</option>
  <option value="carol|moderator">carol (role moderator)</option>
  <option value="dave|banned-spammer">dave (role banned-spammer)</option>
</select>
<button id="connect">Connect with ably-js</button>
<button id="renew" disabled>Renew token now</button>
<button id="ban" disabled>Ban this user</button>
<button id="unban" disabled>Unban</button>

<div class="grid">
  <div>
    <h2>2 · Identity token (development provider)</h2>
    <div class="card"><pre id="identity" class="muted">none yet</pre></div>
  </div>
  <div>
    <h2>3 · Ably JWT (from /auth)</h2>
    <div class="card">
      <div>status: <b id="status" class="muted">not requested</b></div>
      <div>clientId: <b id="client-id">–</b> · expires in <b id="countdown">–</b></div>
      <pre id="ably-token" class="muted"></pre>
    </div>
  </div>
</div>

<h2>4 · Connection</h2>
<div>ably-js connection state: <b id="state">–</b> <span id="key-note" class="muted"></span></div>
<div id="log"></div>

<script src="/ably.min.js"></script>
<script>
const AUTH_URL = ${JSON.stringify(authUrl)};
document.getElementById("auth-url").textContent = AUTH_URL;
const $ = (id) => document.getElementById(id);
let realtime, expiresAt, user;

function log(text, cls) {
  const line = document.createElement("div");
  line.textContent = new Date().toLocaleTimeString() + "  " + text;
  if (cls) line.className = cls;
  $("log").prepend(line);
}
function decode(jwt) {
  const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(decodeURIComponent(escape(atob(part))));
}
function show(id, value, cls) { $(id).textContent = value; $(id).className = cls || ""; }

// The pattern the README recommends: a fresh identity token for every Ably token request.
async function authCallback(tokenParams, callback) {
  try {
    const idToken = await (await fetch("/token?sub=" + encodeURIComponent(user.sub) +
      (user.roles ? "&roles=" + encodeURIComponent(user.roles) : ""))).text();
    show("identity", JSON.stringify(decode(idToken), null, 2));
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(tokenParams || {})) if (v != null) query.set(k, String(v));
    const res = await fetch(AUTH_URL + "/auth?" + query, { headers: { Authorization: "Bearer " + idToken } });
    if (!res.ok) {
      const problem = await res.json();
      show("status", res.status + " " + problem.title + ": " + problem.detail, "bad");
      log("/auth refused: " + res.status + " " + problem.detail, "bad");
      // statusCode 403 makes ably-js give up (FAILED); anything else, it retries.
      return callback({ statusCode: res.status, code: res.status * 100, message: problem.detail }, null);
    }
    const jwt = await res.text();
    const claims = decode(jwt);
    expiresAt = claims.exp * 1000;
    show("status", "200 issued", "ok");
    show("client-id", claims["x-ably-clientId"]);
    show("ably-token", JSON.stringify({ ...claims, "x-ably-capability": JSON.parse(claims["x-ably-capability"]) }, null, 2));
    $("key-note").textContent = decodeHeader(jwt).kid === "localApp.localKey"
      ? "(placeholder key from .dev.vars: Ably will not accept this connection)" : "";
    log("Ably token issued for " + claims["x-ably-clientId"], "ok");
    callback(null, jwt);
  } catch (err) {
    log("token request failed: " + err, "bad");
    callback({ statusCode: 401, code: 40170, message: String(err) }, null);
  }
}
function decodeHeader(jwt) { return JSON.parse(atob(jwt.split(".")[0].replace(/-/g, "+").replace(/_/g, "/"))); }

$("connect").onclick = () => {
  if (realtime) realtime.close();
  const [sub, roles] = $("user").value.split("|");
  user = { sub, roles };
  show("status", "requesting…", "muted");
  realtime = new Ably.Realtime({ authCallback, clientId: sub, disconnectedRetryTimeout: 5000 });
  realtime.connection.on((change) => {
    show("state", change.current, change.current === "failed" ? "bad" : change.current === "connected" ? "ok" : "");
    log("connection " + change.previous + " → " + change.current + (change.reason ? " (" + change.reason.message + ")" : ""));
  });
  for (const id of ["renew", "ban", "unban"]) $(id).disabled = false;
};
$("renew").onclick = () => {
  log("renewing: ably-js calls the authCallback again");
  realtime.auth.authorize().catch((err) => log("renewal refused: " + err.statusCode + " " + ((err.cause && err.cause.message) || err.message), "bad"));
};
$("ban").onclick = async () => {
  const res = await fetch("/demo/bans/" + encodeURIComponent(user.sub), { method: "PUT" });
  log(res.ok ? user.sub + " banned (admin API); renew to see the refusal" : "ban failed: " + res.status, res.ok ? "" : "bad");
};
$("unban").onclick = async () => {
  const res = await fetch("/demo/bans/" + encodeURIComponent(user.sub), { method: "DELETE" });
  log(res.ok ? user.sub + " unbanned; connect again" : "unban failed: " + res.status, res.ok ? "" : "bad");
};
setInterval(() => {
  if (expiresAt) $("countdown").textContent = Math.max(0, Math.round((expiresAt - Date.now()) / 1000)) + " s";
}, 500);
</script>
</body>
</html>`;
}

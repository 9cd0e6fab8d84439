/**
 * The demo page: two users side by side, each connected with the real ably-js through an
 * authCallback that fetches a fresh identity token from this development provider and calls the
 * auth endpoint's /auth. They talk on the channel both may use, see each other in its presence
 * set, are refused (40160) on the other's private channel, watch their token count down and renew,
 * and a ban of one cuts that user's live connection (revoked, re-authentication refused with 403,
 * FAILED) while the other stays connected. Every step lands in the panel's log as it happens.
 *
 * `ablyStandInPort`: the local Ably stand-in's port on 127.0.0.1 (`npm run dev` with the placeholder
 * key); undefined: ably-js talks to Ably itself.
 */

/** The channel both users may use: ABLY_CAPABILITY in .dev.vars.example grants it to everyone. */
const SHARED_CHANNEL = "lobby";

export function demoPage(authUrl: string, ablyStandInPort: string | undefined): string {
  const ably = ablyStandInPort
    ? {
        options: { endpoint: "127.0.0.1", port: Number(ablyStandInPort), tls: false },
        says: `the local Ably stand-in on 127.0.0.1:${ablyStandInPort} (dev/ably), because .dev.vars holds the placeholder key: nothing leaves this machine. Put your own key in .dev.vars to use Ably itself.`,
      }
    : { options: {}, says: "Ably itself, with the key in .dev.vars." };
  const config = { authUrl, sharedChannel: SHARED_CHANNEL, ablyOptions: ably.options };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ably-edge-auth · local demo</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; max-width: 1180px; margin: 1.2rem auto; padding: 0 1rem; color: #1d1d1f; }
  h1 { font-size: 1.3rem; margin: 0 0 .5rem; } h3 { font-size: .95rem; margin: .6rem 0 .2rem; }
  .note { background: #eef6ff; border: 1px solid #9cc3f0; padding: .5rem .8rem; border-radius: 6px; }
  .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; margin-top: .8rem; }
  .panel { border: 1px solid #ccc; border-radius: 8px; padding: .6rem .9rem; }
  .row { margin: .2rem 0; }
  ul { margin: 0; padding-left: 1.1rem; min-height: 1.4rem; }
  pre { white-space: pre-wrap; word-break: break-all; margin: 0; font-size: 12px; }
  button, select, input { font: inherit; padding: .2rem .55rem; margin: .15rem .25rem .15rem 0; }
  .ok { color: #0a7d32; } .bad { color: #b3261e; } .muted { color: #666; }
  .log { font: 12px/1.35 ui-monospace, monospace; height: 11rem; overflow: auto; background: #f6f6f6; padding: .4rem; }
</style>
</head>
<body>
<h1>ably-edge-auth · local demo</h1>
<p class="note">Identity provider and this page: <code>127.0.0.1:8788</code> · auth endpoint: <code>${authUrl}</code> ·
<b>Ably: <span id="ably-mode">${ably.says}</span></b></p>
<div class="grid">${["a", "b"].map(panelHtml).join("")}</div>

<script src="/ably.min.js"></script>
<script>
const CONFIG = ${JSON.stringify(config)};
const USERS = { a: "alice", b: "bob" };

function decode(part) {
  return JSON.parse(decodeURIComponent(escape(atob(part.replace(/-/g, "+").replace(/_/g, "/")))));
}

function panel(p) {
  const $ = (id) => document.getElementById(p + "-" + id);
  /** The user picked in the other panel: their private channel is outside this user's grant. */
  const other = () => document.getElementById((p === "a" ? "b" : "a") + "-user").value.split("|")[0];
  let realtime, user, expiresAt, renewals;
  $("user").value = USERS[p];

  function log(text, cls) {
    const line = document.createElement("div");
    line.textContent = new Date().toLocaleTimeString() + "  " + text;
    if (cls) line.className = cls;
    $("log").prepend(line);
  }
  function show(id, value, cls) { $(id).textContent = value; $(id).className = cls || ""; }
  function item(list, text, cls) {
    const li = document.createElement("li");
    li.textContent = text;
    if (cls) li.className = cls;
    $(list).append(li);
  }

  // The pattern the README recommends: a fresh identity token for every Ably token request.
  async function authCallback(tokenParams, callback) {
    try {
      const idToken = await (await fetch("/token?sub=" + encodeURIComponent(user.sub) +
        (user.roles ? "&roles=" + encodeURIComponent(user.roles) : ""))).text();
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries(tokenParams || {})) if (v != null) query.set(k, String(v));
      const res = await fetch(CONFIG.authUrl + "/auth?" + query, { headers: { Authorization: "Bearer " + idToken } });
      if (!res.ok) {
        const problem = await res.json();
        show("status", res.status + " " + problem.detail, "bad");
        log("/auth refused: " + res.status + " " + problem.detail, "bad");
        // statusCode 403 makes ably-js give up (FAILED); anything else, it retries.
        return callback({ statusCode: res.status, code: res.status * 100, message: problem.detail }, null);
      }
      const jwt = await res.text();
      const claims = decode(jwt.split(".")[1]);
      const renewal = expiresAt !== undefined;
      expiresAt = claims.exp * 1000;
      countdown();
      show("status", "200 issued", "ok");
      show("client-id", claims["x-ably-clientId"]);
      $("token").textContent = "capability " + claims["x-ably-capability"];
      if (renewal) show("renewals", String(++renewals), "ok");
      log((renewal ? "token renewed" : "token issued") + " by /auth for " + claims["x-ably-clientId"] +
        ", expires in " + (claims.exp - claims.iat) + " s", "ok");
      callback(null, jwt);
    } catch (err) {
      log("token request failed: " + err, "bad");
      callback({ statusCode: 401, code: 40170, message: String(err) }, null);
    }
  }

  function countdown() {
    if (expiresAt) $("countdown").textContent = Math.max(0, Math.round((expiresAt - Date.now()) / 1000)) + " s";
  }
  function refreshPresence(channel) {
    channel.presence.get().then((members) => {
      $("presence").replaceChildren();
      for (const m of members.map((m) => m.clientId).sort()) item("presence", m);
    }, () => {});
  }

  $("connect").onclick = () => {
    if (realtime) realtime.close();
    const [sub, roles] = $("user").value.split("|");
    user = { sub, roles };
    expiresAt = undefined;
    renewals = 0;
    for (const id of ["messages", "presence"]) $(id).replaceChildren();
    show("renewals", "0");
    show("refused", "–");
    show("status", "requesting…", "muted");
    const client = new Ably.Realtime({ ...CONFIG.ablyOptions, authCallback, clientId: sub, disconnectedRetryTimeout: 5000 });
    realtime = client;
    client.connection.on((change) => {
      if (client !== realtime) return; // a connection this panel has replaced
      show("state", change.current, change.current === "failed" ? "bad" : change.current === "connected" ? "ok" : "");
      const reason = change.reason ? " (" + change.reason.code + " " + change.reason.message + ")" : "";
      if (change.current === change.previous) return log("still connected: Ably took the new token in place" + reason);
      log("connection " + change.previous + " → " + change.current + reason, change.reason ? "bad" : "");
      if (change.current === "failed" || change.current === "closed") {
        // Nothing of this connection is live any more: no token to count down, no presence set.
        expiresAt = undefined;
        show("countdown", "–");
        $("presence").replaceChildren();
      }
    });
    const lobby = realtime.channels.get(CONFIG.sharedChannel);
    lobby.subscribe((message) => item("messages", message.clientId + ": " + message.data));
    lobby.presence.subscribe((member) => {
      log(member.clientId + " " + member.action + " presence on " + CONFIG.sharedChannel);
      refreshPresence(lobby);
    });
    lobby.presence.enter().then(() => refreshPresence(lobby), (err) => log("presence refused: " + err.code + " " + err.message, "bad"));
    for (const id of ["send", "forbidden", "ban", "unban"]) $(id).disabled = false;
  };

  $("send").onclick = () => {
    const text = $("text").value || "hello from " + user.sub;
    realtime.channels.get(CONFIG.sharedChannel).publish("chat", text)
      .then(() => log("published on " + CONFIG.sharedChannel + ": " + text, "ok"),
            (err) => log("publish refused: " + err.code + " " + err.message, "bad"));
  };
  $("forbidden").onclick = () => {
    const channel = "private:" + other();
    log("publishing on " + channel + ", outside " + user.sub + "'s grant…");
    realtime.channels.get(channel).publish("chat", "let me in")
      .then(() => show("refused", "published on " + channel + " (not refused!)", "bad"),
            (err) => {
              show("refused", err.code + " " + err.message, "bad");
              log("Ably refused the publish on " + channel + ": " + err.code + " " + err.message, "bad");
            });
  };
  $("ban").onclick = async () => {
    log("banning " + user.sub + " through the admin API…");
    const res = await fetch("/demo/bans/" + encodeURIComponent(user.sub), { method: "PUT" });
    log(res.ok ? user.sub + " banned: the auth endpoint revoked their tokens at Ably" : "ban failed: " + res.status, "bad");
  };
  $("unban").onclick = async () => {
    const res = await fetch("/demo/bans/" + encodeURIComponent(user.sub), { method: "DELETE" });
    log(res.ok ? user.sub + " unbanned; connect again" : "unban failed: " + res.status, res.ok ? "" : "bad");
  };
  setInterval(countdown, 500);
}
panel("a");
panel("b");
</script>
</body>
</html>`;
}

/** One user's panel; every element's id starts with the panel's letter. */
function panelHtml(p: string): string {
  return `
<section class="panel" id="${p}">
  <div class="row">
    <select id="${p}-user">
      <option value="alice">alice</option>
      <option value="bob">bob</option>
      <option value="carol|moderator">carol (role moderator)</option>
      <option value="dave|banned-spammer">dave (role banned-spammer)</option>
    </select>
    <button id="${p}-connect">Connect</button>
    <button id="${p}-ban" disabled>Ban</button>
    <button id="${p}-unban" disabled>Unban</button>
  </div>
  <div class="row">connection: <b id="${p}-state">–</b> · clientId <b id="${p}-client-id">–</b> · /auth: <b id="${p}-status" class="muted">–</b></div>
  <div class="row">token expires in <b id="${p}-countdown">–</b> · renewals <b id="${p}-renewals">0</b></div>
  <pre id="${p}-token" class="muted"></pre>
  <h3>Messages on ${SHARED_CHANNEL}</h3>
  <ul id="${p}-messages"></ul>
  <div class="row"><input id="${p}-text" placeholder="say something"> <button id="${p}-send" disabled>Send</button></div>
  <h3>Present on ${SHARED_CHANNEL}</h3>
  <ul id="${p}-presence"></ul>
  <h3>Outside the grant</h3>
  <div class="row"><button id="${p}-forbidden" disabled>Publish on the other user's private channel</button> <b id="${p}-refused">–</b></div>
  <div class="log" id="${p}-log"></div>
</section>`;
}

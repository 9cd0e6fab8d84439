/**
 * The moderation console: a client of the admin API (docs/operations.md#the-admin-api) on the
 * same origin. Signed in by Cloudflare Access (its cookie goes with every same-origin call) or by
 * the ADMIN_TOKEN, kept in this tab's sessionStorage and sent as a Bearer token.
 *
 * Everything a moderator types or a ban record holds reaches the page as text (textContent,
 * text nodes), never as markup: the page's CSP forbids inline code, and no data is ever parsed
 * as HTML here.
 */

const TOKEN_KEY = "ably-edge-auth.admin-token";
const SECOND_MS = 1000;

const $ = (id) => document.getElementById(id);

/** An element with properties (never innerHTML) and children: strings become text nodes. */
function el(tag, props = {}, ...children) {
  const element = Object.assign(document.createElement(tag), props);
  element.append(...children);
  return element;
}

/** A failed call: the problem document's title and detail, as the API wrote them. */
class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  if (response.ok) return response.json();
  const problem = await response.json().catch(() => ({}));
  throw new ApiError(response.status, problem.title ?? `HTTP ${response.status}`, problem.detail);
}

const banPath = (clientId) => `/admin/bans/${encodeURIComponent(clientId)}`;

function say(text, isError = false) {
  const message = $("message");
  message.textContent = text;
  message.classList.toggle("error", isError);
  message.hidden = text === "";
}

/** Runs a user's action, showing its failure; a refused credential sends them back to sign in. */
async function act(action) {
  try {
    say("");
    await action();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) signOut();
    say(error.message, true);
  }
}

// ---- signing in ----

/** Who is signed in: `{ moderator, via }`, or null before any credential. */
async function whoami() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  try {
    return await api("GET", "/admin/whoami");
  } catch (error) {
    if (error.status === 401 && !token) return null;
    throw error;
  }
}

async function start() {
  const who = await whoami();
  $("sign-in").hidden = who !== null;
  $("console").hidden = who === null;
  $("sign-out").hidden = who?.via !== "token";
  $("who").textContent =
    who === null
      ? ""
      : who.via === "access"
        ? `signed in as ${who.moderator ?? "?"} (Cloudflare Access)`
        : "signed in with the admin token";
  if (who !== null) await loadBans();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  $("sign-in").hidden = false;
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  showDetail(null);
}

// ---- the list ----

let nextCursor = null;

async function loadBans(cursor = null) {
  const page = await api("GET", `/admin/bans?cursor=${encodeURIComponent(cursor ?? "")}`);
  if (cursor === null) $("bans").replaceChildren();
  $("bans").append(...page.bans.map(banRow));
  $("no-bans").hidden = $("bans").childElementCount > 0;
  nextCursor = page.cursor;
  $("more").hidden = nextCursor === null;
}

function banRow(ban) {
  const show = el("button", { type: "button", textContent: "Details" });
  show.addEventListener("click", () => act(() => openBan(ban.clientId)));
  return el(
    "tr",
    {},
    el("td", { className: "id" }, ban.clientId),
    el("td", {}, ban.reason ?? ""),
    el("td", {}, ban.bannedBy ?? ""),
    el("td", {}, when(ban.bannedAt)),
    el("td", {}, ban.until === undefined ? "permanent" : when(ban.until)),
    el("td", {}, show, liftButton(ban.clientId)),
  );
}

function liftButton(clientId) {
  const button = el("button", { type: "button", className: "danger", textContent: "Lift" });
  button.addEventListener("click", () =>
    act(async () => {
      await api("DELETE", banPath(clientId));
      if ($("detail").dataset.clientId === clientId) showDetail(null);
      say(`Lifted the ban on ${clientId}.`);
      await loadBans();
    }),
  );
  return button;
}

/** An ISO 8601 time in the moderator's own time zone; anything else as it is. */
function when(iso) {
  if (iso === undefined || iso === null) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

// ---- one ban ----

async function openBan(clientId) {
  showDetail(await api("GET", banPath(clientId)));
  $("detail").scrollIntoView({ block: "nearest" });
}

let countdown;

function showDetail(ban) {
  clearInterval(countdown);
  const detail = $("detail");
  detail.hidden = ban === null;
  if (ban === null) {
    delete detail.dataset.clientId;
    return detail.replaceChildren();
  }
  detail.dataset.clientId = ban.clientId;
  const { revocation } = ban;
  const airtight = el("dd", { className: "countdown" });
  const tick = () => (airtight.textContent = airtightText(revocation.airtightAt));
  tick();
  countdown = setInterval(tick, SECOND_MS);
  detail.replaceChildren(
    el("div", { className: "bar" }, el("h2", {}, "Ban of ", el("span", { className: "id" }, ban.clientId))),
    el(
      "dl",
      {},
      ...field("Reason", ban.reason ?? ""),
      ...field("Banned by", ban.bannedBy ?? ""),
      ...field("Banned at", when(ban.bannedAt)),
      ...field("Until", ban.until === undefined ? "permanent" : when(ban.until)),
      ...field("Active", ban.active ? "yes" : "no (expired)"),
      ...field("Revocation", revocation.status),
      el("dt", {}, "Airtight"),
      airtight,
      ...(revocation.nextAttemptAt ? field("Next attempt", when(revocation.nextAttemptAt)) : []),
    ),
    ...(revocation.rounds ?? []).map(roundTable),
    liftButton(ban.clientId),
  );
}

const field = (name, value) => [el("dt", {}, name), el("dd", {}, value)];

/** From when no token of the user is valid any more, counting down to it. */
function airtightText(airtightAt) {
  if (airtightAt === null || airtightAt === undefined) return "not assured: a revocation round failed";
  const left = Math.ceil((new Date(airtightAt).getTime() - Date.now()) / SECOND_MS);
  if (left <= 0) return `since ${when(airtightAt)}`;
  const minutes = Math.floor(left / 60);
  return `in ${minutes > 0 ? `${minutes} min ` : ""}${left % 60} s (${when(airtightAt)})`;
}

function roundTable(round) {
  const attempts = round.attempts.length
    ? round.attempts.map((attempt) =>
        el(
          "tr",
          {},
          el("td", {}, when(attempt.at)),
          el("td", {}, attempt.issuedBefore === null ? "(Ably's clock)" : when(attempt.issuedBefore)),
          el("td", {}, attempt.outcome),
          el("td", {}, attempt.reason ?? ""),
        ),
      )
    : [el("tr", {}, el("td", { colSpan: 4, className: "hint" }, "no attempt yet"))];
  return el(
    "table",
    { className: "round" },
    el("caption", {}, `Round ${round.name}: ${round.state}, due ${when(round.due)}`),
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", {}, "Attempt at"),
        el("th", {}, "issuedBefore"),
        el("th", {}, "Outcome"),
        el("th", {}, "Reason"),
      ),
    ),
    el("tbody", {}, ...attempts),
  );
}

// ---- banning ----

function ttlSeconds() {
  const duration = $("ban-duration").value;
  if (duration === "") return undefined;
  if (duration !== "custom") return Number(duration);
  return Number($("ban-custom-amount").value) * Number($("ban-custom-unit").value);
}

async function ban() {
  const clientId = $("ban-client-id").value;
  const reason = $("ban-reason").value;
  const banned = await api("PUT", banPath(clientId), {
    ...(reason === "" ? {} : { reason }),
    ttlSeconds: ttlSeconds(),
  });
  $("ban-form").reset();
  $("ban-custom").hidden = true;
  say(`Banned ${clientId}.`);
  showDetail(banned);
  await loadBans();
}

// ---- wiring ----

const onSubmit = (id, action) =>
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    void act(action);
  });

onSubmit("sign-in-form", async () => {
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  $("token").value = "";
  await start();
});
onSubmit("ban-form", ban);
onSubmit("find-form", () => openBan($("find-client-id").value));
$("ban-duration").addEventListener("change", () => ($("ban-custom").hidden = $("ban-duration").value !== "custom"));
$("refresh").addEventListener("click", () => act(() => loadBans()));
$("more").addEventListener("click", () => act(() => loadBans(nextCursor)));
$("sign-out").addEventListener("click", signOut);

void act(start);

/**
 * The moderation console: the static files in public/admin/ (Workers Static Assets, not in this
 * bundle), handed out through the ASSETS binding only while the admin API is on, with a policy
 * that lets the page load its own script and style and call its own origin, nothing else. The page
 * holds no secret: every call it makes is authenticated by the admin API, so its files need none.
 */
import type { Handler } from "hono";
import { Problem } from "./errors";
import type { AppEnv } from "./request/context";
import { asPage } from "./request/response-headers";

/**
 * Every path the console is served at: no other file under public/ is ever handed out. The router
 * takes `/admin` for `/admin/` too (one trailing slash): `/admin` answers with the assets' redirect
 * to `/admin/`, which is index.html.
 */
export const CONSOLE_PATHS = ["/admin", "/admin/console.js", "/admin/console.css"];

/** Its own script, style and API only: no inline code, nothing from elsewhere, never framed. */
const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The console's file for the request; adminOn() has already answered 404 while the admin API is off. */
export function serveConsole(): Handler<AppEnv> {
  return async function serveConsole(c) {
    const file = await c.env.ASSETS.fetch(c.req.raw);
    // The router takes /admin/console.js/ for /admin/console.js; the assets have no such file.
    if (file.status === 404)
      throw new Problem("not-found", "The console's files are /admin/, console.js and console.css.");
    // A success in the log even as a redirect (/admin) or 304 (a revalidated file): nothing was refused.
    c.set("outcome", "ok");
    return asPage(file, c.get("requestId"), CONSOLE_CSP);
  };
}

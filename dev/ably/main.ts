// The Ably stand-in as its own process, for `npm run dev` (dev/run.mjs starts it with the key from
// .dev.vars in ABLY_API_KEY and its port in ABLY_STAND_IN_PORT). Runs on Node's type stripping.
import { startAblyStandIn } from "./server.ts";

const apiKey = process.env.ABLY_API_KEY ?? "";
if (!/^[^.:]+\.[^.:]+:.+$/.test(apiKey)) {
  console.error("ABLY_API_KEY must be an Ably key, <appId>.<keyId>:<secret>");
  process.exit(1);
}
const ably = await startAblyStandIn(apiKey, undefined, Number(process.env.ABLY_STAND_IN_PORT));
console.log(`Ably stand-in (REST and Realtime) on 127.0.0.1:${ably.port}, for the key ${ably.keyName}`);

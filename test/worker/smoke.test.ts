import { expect, it } from "vitest";
import { getToken, token, verifyAsAbly } from "./helpers";

it("issues", async () => {
  const res = await getToken(await token());
  const body = await res.text();
  expect(res.status, body).toBe(200);
  console.log(await verifyAsAbly(body));
});

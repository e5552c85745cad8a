// The guide's Node verifier (docs/step-up-assertions.md) with the test's values, run by
// tests/api/assertions.rs: reads {jwks_url, issuer, audience, acr, cases: [{token, sub}]} on
// stdin, prints one {ok, claims | error} per case.
import { createRemoteJWKSet, jwtVerify } from "jose";

const input = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
}));

const JWKS = createRemoteJWKSet(new URL(input.jwks_url));

async function verifyStepUp(token, userId, maxAge = 300) {
  const { payload } = await jwtVerify(token, JWKS, {
    issuer: input.issuer,
    audience: input.audience,
    algorithms: ["EdDSA", "ES256"],
    typ: "faceauth-step-up+jwt",
    subject: userId, // another user's assertion fails here
    requiredClaims: ["exp", "auth_time", "jti"],
    clockTolerance: 30,
  });
  const age = Math.floor(Date.now() / 1000) - payload.auth_time;
  if (age < 0 || age > maxAge || payload.acr !== input.acr || !payload.amr?.includes("face")) {
    throw new Error("step-up required");
  }
  return payload;
}

const out = [];
for (const c of input.cases) {
  try {
    out.push({ ok: true, claims: await verifyStepUp(c.token, c.sub) });
  } catch (e) {
    out.push({ ok: false, error: `${e.code ?? e.name}: ${e.message}` });
  }
}
console.log(JSON.stringify(out));

// Starts panva's oidc-provider for bff's interop tests (../oidcprovider_test.go).
//
//   node server.js config.json
//
// config.json: {"port": 4000, "issuer": "http://127.0.0.1:4000",
// "acrValues": ["urn:bff:loa:1", "urn:bff:loa:2"], "accessTokenTTL": 120,
// "clients": [ …client metadata… ]}. Prints "listening" once it serves.
//
// The provider keeps its defaults where bff must cope with them: the strict
// offline_access policy (a refresh token only with prompt=consent), the
// development login and consent forms, PAR advertised, acr_values voluntary.
import dns from 'node:dns';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

// The app's URLs name localhost, which the app serves on IPv4 only: the
// back-channel logout request and the jwks_uri fetch must not try ::1.
dns.setDefaultResultOrder('ipv4first');

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const [baseACR, ...higherACRs] = config.acrValues;

const provider = new Provider(config.issuer, {
  clients: config.clients,
  acrValues: config.acrValues,
  claims: {
    acr: null, amr: null, auth_time: null, sid: null,
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true, name: `User ${id}` };
      },
    };
  },
  cookies: { keys: ['bff-interop-cookie-key-not-secret'] },
  features: {
    devInteractions: { enabled: true },
    claimsParameter: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    pushedAuthorizationRequests: { enabled: true },
  },
  rotateRefreshToken: true,
  // The provider refuses to fetch from loopback addresses (SSRF
  // protection); the app's jwks_uri and back-channel logout URI are on
  // loopback here. Its fetch hook takes every other option as it is.
  fetch: (url, { dispatcher, ...options }) => fetch(url, options),
  ttl: { AccessToken: config.accessTokenTTL },
});

// The development login form asks for a login and a password only; a real
// deployment's form would also say how the user authenticated. Here the
// user reaches the highest level the request asks for (acr_values, or the
// claims parameter's acr), else the base level.
const finished = provider.interactionFinished.bind(provider);
provider.interactionFinished = async (req, res, result, options) => {
  if (result.login) {
    const { params } = await provider.interactionDetails(req, res);
    const asked = new Set((params.acr_values ?? '').split(' '));
    for (const v of JSON.parse(params.claims ?? '{}').id_token?.acr?.values ?? []) asked.add(v);
    const acr = higherACRs.filter((v) => asked.has(v)).at(-1) ?? baseACR;
    result.login = { ...result.login, acr, amr: acr === baseACR ? ['pwd'] : ['pwd', 'otp'] };
    console.log('login', JSON.stringify(result.login));
  }
  return finished(req, res, result, options);
};

// Errors the provider answers with, and their details, go to the log that
// the Go test prints when it fails.
for (const event of ['server_error', 'authorization.error', 'backchannel.error', 'end_session.error', 'grant.error',
  'introspection.error', 'pushed_authorization_request.error', 'revocation.error', 'userinfo.error']) {
  provider.on(event, (...args) => {
    const causes = [];
    for (let err = args.find((a) => a instanceof Error); err && causes.length < 4; err = err.cause) {
      causes.push([err.message, err.error_description].filter(Boolean).join(': '));
    }
    console.error(event, causes.join(' <- '));
  });
}
provider.on('interaction.started', (ctx, prompt) => console.log('interaction', prompt.name, prompt.reasons.join(','),
  'acr_values', ctx.oidc.params.acr_values ?? '-', 'claims', ctx.oidc.params.claims ?? '-'));
provider.on('backchannel.success', (_client, _accountId, sid) => console.log('backchannel.success', sid ? 'with sid' : ''));

provider.listen(config.port, '127.0.0.1', () => console.log('listening'));

// The peer of scripts/bench: oidc-provider, set up as close to our service as
// it allows. Client credentials (one client, client_secret_basic) issue JWT
// access tokens signed HS256 with a symmetric key, as ours are; introspection
// is on; tokens live 2 h. Storage is oidc-provider's built-in in-memory
// adapter, the lightest it has (ours runs on a SQLite file).
//
// oidc-provider does not introspect its own JWT access tokens (it answers
// {"active": false}: a JWT is meant to be checked by the resource server), so
// a second resource, urn:bench:opaque, issues opaque tokens, and the
// introspection run introspects one of those: a lookup in its store.
//
// Usage: node server.mjs PORT CLIENT_ID CLIENT_SECRET
// Prints "listening on http://127.0.0.1:PORT" once it answers.

import { createSecretKey, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const [port, clientId, clientSecret] = process.argv.slice(2);
if (!port || !clientId || !clientSecret) {
  console.error('usage: node server.mjs PORT CLIENT_ID CLIENT_SECRET');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${port}`;
const resource = 'urn:bench:api';
const opaqueResource = 'urn:bench:opaque';
const signingKey = createSecretKey(randomBytes(32));

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      introspection_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  scopes: ['read', 'write'],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    // No interactive flows are used: keep the development pages off.
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => (indicator === opaqueResource
        ? {
          scope: 'read write',
          audience: opaqueResource,
          accessTokenTTL: 7200,
          accessTokenFormat: 'opaque',
        }
        : {
          scope: 'read write',
          audience: resource,
          accessTokenTTL: 7200,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'HS256', key: signingKey } },
        }),
    },
  },
  // Cookies are not used by client credentials; a fixed key silences the
  // warning about the development default.
  cookies: { keys: [randomBytes(32).toString('hex')] },
});

const server = createServer(provider.callback());
server.keepAliveTimeout = 60_000;
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening on ${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}

-- Run by scripts/bench after Debian's schema
-- (/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3), on a fresh
-- file: one OAuth2 plugin instance and one confidential client.
--
-- The plugin is glewlwyd's OAuth2 module ("oauth2-glewlwyd", mounted at
-- /api/glwd): client credentials only, access tokens are JWTs signed HS256
-- with @SIGNING_KEY@, as ours are, living 2 h; introspection is on, and a
-- client may introspect the tokens issued to it with its own credentials.
-- Each token it issues is also a row in the same SQLite file
-- (gpg_access_token), which is what introspection looks up.
--
-- @CLIENT_SECRET_HASH@ is the client secret as glewlwyd's database client
-- module stores it: base64(PBKDF2-HMAC-SHA256(secret, salt, 1000, 32) || salt)
-- with a 16-character salt.
INSERT INTO g_plugin_module_instance (gpmi_module, gpmi_name, gpmi_display_name, gpmi_parameters)
VALUES ('oauth2-glewlwyd', 'glwd', 'OAuth2 (scripts/bench)', json_object(
  'jwt-type', 'sha',
  'jwt-key-size', '256',
  'key', '@SIGNING_KEY@',
  'access-token-duration', 7200,
  'refresh-token-duration', 7200,
  'code-duration', 600,
  'refresh-token-rolling', json('false'),
  'auth-type-code-enabled', json('false'),
  'auth-type-implicit-enabled', json('false'),
  'auth-type-password-enabled', json('false'),
  'auth-type-client-enabled', json('true'),
  'auth-type-refresh-enabled', json('false'),
  'introspection-revocation-allowed', json('true'),
  'introspection-revocation-allow-target-client', json('true'),
  'scope', json_array()
));

INSERT INTO g_scope (gs_name, gs_display_name, gs_description, gs_password_required, gs_password_max_age)
VALUES ('read', 'read', 'bench', 0, 0), ('write', 'write', 'bench', 0, 0);

INSERT INTO g_client (gc_client_id, gc_name, gc_confidential, gc_password, gc_enabled)
VALUES ('@CLIENT_ID@', 'bench', 1, '@CLIENT_SECRET_HASH@', 1);
INSERT INTO g_client_property (gc_id, gcp_name, gcp_value)
SELECT gc_id, 'authorization_type', 'client_credentials' FROM g_client WHERE gc_client_id = '@CLIENT_ID@';
INSERT INTO g_client_scope (gcs_name) VALUES ('read'), ('write');
INSERT INTO g_client_scope_client (gc_id, gcs_id)
SELECT c.gc_id, s.gcs_id FROM g_client AS c, g_client_scope AS s WHERE c.gc_client_id = '@CLIENT_ID@';

const proxyVariableNames = ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY'] as const;

/**
 * Matches every variable a common client reads a proxy (or a proxy bypass) from: `*_PROXY` in any
 * case (curl, git, Python, Go, pip, apt), `NO_PROXY`, and npm's `npm_config_*proxy` settings.
 */
const inheritedProxyVariable = /(^|_)(no_)?proxy$|^npm_config_(https_)?proxy$|^npm_config_noproxy$/i;

/**
 * The environment that points a sandbox's clients at the proxy at `url` (the in-namespace relay,
 * `http://127.0.0.1:<port>`): `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` in upper and lower case,
 * npm's `npm_config_proxy`/`npm_config_https_proxy`, and an empty `NO_PROXY` so that no host
 * bypasses the proxy (a bypassed host would only fail: the namespace has no other route).
 */
export function proxyEnvironment(url: string): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const name of proxyVariableNames) {
    environment[name] = url;
    environment[name.toLowerCase()] = url;
  }
  environment.npm_config_proxy = url;
  environment.npm_config_https_proxy = url;
  environment.NO_PROXY = '';
  environment.no_proxy = '';
  return environment;
}

/**
 * `environment` without any proxy variable it inherited (an inherited `FTP_PROXY` or `no_proxy`
 * would point a client elsewhere), plus `proxyEnvironment(url)`.
 */
export function withProxyEnvironment(
  environment: Record<string, string>,
  url: string,
): Record<string, string> {
  const kept = Object.entries(environment).filter(([name]) => !inheritedProxyVariable.test(name));
  return { ...Object.fromEntries(kept), ...proxyEnvironment(url) };
}

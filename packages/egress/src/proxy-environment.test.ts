import { describe, expect, it } from 'vitest';
import { proxyEnvironment, withProxyEnvironment } from './proxy-environment.js';

describe('proxyEnvironment', () => {
  it('points every proxy variable a client reads at the relay and bypasses nothing', () => {
    expect(proxyEnvironment('http://127.0.0.1:3128')).toEqual({
      HTTP_PROXY: 'http://127.0.0.1:3128',
      http_proxy: 'http://127.0.0.1:3128',
      HTTPS_PROXY: 'http://127.0.0.1:3128',
      https_proxy: 'http://127.0.0.1:3128',
      ALL_PROXY: 'http://127.0.0.1:3128',
      all_proxy: 'http://127.0.0.1:3128',
      npm_config_proxy: 'http://127.0.0.1:3128',
      npm_config_https_proxy: 'http://127.0.0.1:3128',
      NO_PROXY: '',
      no_proxy: '',
    });
  });

  it('replaces every inherited proxy variable and keeps the rest', () => {
    const environment = withProxyEnvironment(
      {
        PATH: '/usr/bin',
        HTTPS_PROXY: 'http://corporate:8080',
        ftp_proxy: 'http://corporate:21',
        SOCKS_PROXY: 'socks5://elsewhere:1080',
        no_proxy: '*',
        npm_config_noproxy: '*',
        GIT_PROXY_COMMAND: 'kept-as-is',
      },
      'http://127.0.0.1:9',
    );
    expect(environment.PATH).toBe('/usr/bin');
    expect(environment.HTTPS_PROXY).toBe('http://127.0.0.1:9');
    expect(environment.no_proxy).toBe('');
    expect(environment).not.toHaveProperty('ftp_proxy');
    expect(environment).not.toHaveProperty('SOCKS_PROXY');
    expect(environment).not.toHaveProperty('npm_config_noproxy');
    expect(environment.GIT_PROXY_COMMAND).toBe('kept-as-is');
  });
});

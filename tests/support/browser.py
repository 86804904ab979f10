"""How the browser tests launch Debian's Chromium: headless, and talking to nothing but the
sandbox on 127.0.0.1 (scripts/egress_audit.sh checks it in CI)."""

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing but the sandbox: no name is resolved (not even by the DNS prefetcher or the
    # secure-DNS probe), and no network-change probe (a UDP connect to a public resolver).
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--dns-prefetch-disable",
    "--disable-features=DnsOverHttps,DnsOverHttpsUpgrade,AsyncDns,WebRtcHideLocalIpsWithMdns,"
    "OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--no-pings",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--disable-breakpad",
]

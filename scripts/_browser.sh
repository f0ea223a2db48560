# Sourced by scripts/test: makes sure Debian's chromium is there for the web UI tests
# (tests/ui drive it headless through Playwright; Playwright's own browser download is
# never used). Idempotent: does nothing when the browser is already installed.
# If it cannot be installed, say why and go on: the UI tests then fail (CI) or skip
# with that reason; they never pass without a browser.
AUTOTUNE_CHROMIUM="${AUTOTUNE_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$AUTOTUNE_CHROMIUM" ] && [ -z "${AUTOTUNE_NO_BROWSER_INSTALL:-}" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing Debian's chromium for the web UI tests (apt-get install chromium)" >&2
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
               DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2; }; then
            echo "==> could not install chromium; the web UI tests (tests/ui) will not run" >&2
        fi
    else
        echo "==> $AUTOTUNE_CHROMIUM is missing and this is not root on Debian; install chromium" \
             "(apt-get install chromium) or set AUTOTUNE_CHROMIUM, else the web UI tests (tests/ui) will not run" >&2
    fi
fi
export AUTOTUNE_CHROMIUM

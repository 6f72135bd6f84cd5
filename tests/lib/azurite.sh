# Start and stop azurite (Microsoft's Azure Blob emulator, from .cache/npm,
# installed by scripts/get-azurite.sh) for tests. It checks Shared Key
# signatures.
#   azurite_start NAME   starts a blob server in $T_TMP/azurite-NAME on a free
#                        loopback port; exports AZURITE_PORT, AZURITE_ENDPOINT
#                        (http://127.0.0.1:PORT/devstoreaccount1),
#                        AZURE_TEST_ACCOUNT, AZURE_TEST_KEY; sets AZURITE_PORT_<NAME>
#   azurite_stop NAME    stops it by PID
#   azurite_stop_all     stops every server this script started
#   azurite_py CODE      Python (stdlib only) with `az`, a Shared Key client
# Needs lib.sh (T_TMP, free_port). t_cleanup calls azurite_stop_all.

AZURITE_PIDS=""
AZURITE_BIN=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.cache/npm/node_modules/.bin/azurite-blob

azurite_start() {
    local name=$1 dir="$T_TMP/azurite-$1" port pid
    if [ ! -x "$AZURITE_BIN" ]; then
        echo "azurite: $AZURITE_BIN is missing; run scripts/setup.sh (or scripts/get-azurite.sh)" >&2
        return 1
    fi
    mkdir -p "$dir/data"
    port=$(free_port)
    "$AZURITE_BIN" --blobHost 127.0.0.1 --blobPort "$port" --location "$dir/data" \
        --skipApiVersionCheck --loose --disableTelemetry >"$dir/out.log" 2>&1 &
    pid=$!
    AZURITE_PIDS="$AZURITE_PIDS $pid"
    eval "AZURITE_PID_$name=$pid"
    # Any HTTP answer (an unsigned request gets 403 or 400) means it listens.
    for _ in $(seq 1 200); do
        if curl -s --max-time 1 -o /dev/null -w '%{http_code}' \
            "http://127.0.0.1:$port/devstoreaccount1?comp=list" 2>/dev/null | grep -q '^[1-5]'; then
            export AZURITE_PORT=$port
            export AZURITE_ENDPOINT=http://127.0.0.1:$port/devstoreaccount1
            export AZURE_TEST_ACCOUNT=devstoreaccount1
            # The emulator's well-known public development key.
            export AZURE_TEST_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
            eval "AZURITE_PORT_$name=$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "azurite '$name' did not start on port $port; its log:" >&2
    tail -20 "$dir/out.log" >&2
    return 1
}

azurite_stop() {
    local pid
    eval "pid=\${AZURITE_PID_$1:-}"
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    eval "AZURITE_PID_$1="
}

azurite_stop_all() {
    local pid
    for pid in $AZURITE_PIDS; do kill "$pid" 2>/dev/null; done
    for pid in $AZURITE_PIDS; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    AZURITE_PIDS=""
}

# azurite_py CODE: runs Python with `az` bound to a Shared Key client of
# AZURITE_ENDPOINT (account AZURE_TEST_ACCOUNT, key AZURE_TEST_KEY):
#   az.create_container(c)            az.list_blobs(c, prefix='') -> [names]
#   az.put_blob(c, name, data, content_type='application/octet-stream')
#   az.get_blob(c, name) -> bytes     az.delete_blob(c, name)
#   az.request(method, path, query={}, headers={}, body=b'') -> (status, headers, body)
# The helpers raise AzError (.status, .code) on any status >= 300;
# Az(key=...) gives a client with another key.
azurite_py() {
    /usr/bin/python3 - "$1" <<'PY'
import base64, email.utils, hashlib, hmac, html, os, re, sys, urllib.error, urllib.parse, urllib.request

class AzError(Exception):
    def __init__(self, status, body):
        m = re.search(rb'<Code>([^<]*)</Code>', body or b'')
        self.status, self.code = status, (m.group(1).decode() if m else '')
        super().__init__('HTTP %d %s' % (status, self.code))

class Az:
    def __init__(self, endpoint=None, account=None, key=None):
        self.endpoint = (endpoint or os.environ['AZURITE_ENDPOINT']).rstrip('/')
        self.account = account or os.environ.get('AZURE_TEST_ACCOUNT', 'devstoreaccount1')
        self.key = base64.b64decode(key or os.environ['AZURE_TEST_KEY'])

    def request(self, method, path, query=None, headers=None, body=b''):
        query = dict(query or {})
        url = urllib.parse.urlsplit(self.endpoint + '/' + urllib.parse.quote(path.lstrip('/')))
        h = {k.lower(): str(v) for k, v in (headers or {}).items()}
        h['x-ms-date'] = email.utils.formatdate(usegmt=True)
        h['x-ms-version'] = '2021-08-06'
        if body:
            h['content-length'] = str(len(body))
        if body or method in ('PUT', 'POST'):
            # urllib would add its own Content-Type, outside the signature.
            h.setdefault('content-type', 'application/octet-stream')
        std = ['content-encoding', 'content-language', 'content-length', 'content-md5',
               'content-type', 'date', 'if-modified-since', 'if-match', 'if-none-match',
               'if-unmodified-since', 'range']
        lines = [method] + [h.get(n, '') for n in std]
        lines += ['%s:%s' % (k, h[k].strip()) for k in sorted(h) if k.startswith('x-ms-')]
        res = '/' + self.account + url.path
        for k in sorted(query, key=str.lower):
            res += '\n%s:%s' % (k.lower(), query[k])
        sig = hmac.new(self.key, ('\n'.join(lines) + '\n' + res).encode(), hashlib.sha256).digest()
        h['authorization'] = 'SharedKey %s:%s' % (self.account, base64.b64encode(sig).decode())
        full = urllib.parse.urlunsplit((url.scheme, url.netloc, url.path, urllib.parse.urlencode(query), ''))
        req = urllib.request.Request(full, data=body if body or method in ('PUT', 'POST') else None,
                                     method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as f:
                return f.status, dict(f.headers), f.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def _ok(self, *a, **kw):
        st, hd, body = self.request(*a, **kw)
        if st >= 300:
            raise AzError(st, body)
        return hd, body

    def create_container(self, c):
        self._ok('PUT', c, {'restype': 'container'})

    def put_blob(self, c, name, data, content_type='application/octet-stream'):
        self._ok('PUT', c + '/' + name, headers={'x-ms-blob-type': 'BlockBlob', 'content-type': content_type},
                 body=data)

    def get_blob(self, c, name):
        return self._ok('GET', c + '/' + name)[1]

    def delete_blob(self, c, name):
        self._ok('DELETE', c + '/' + name)

    def list_blobs(self, c, prefix=''):
        names, marker = [], ''
        while True:
            q = {'restype': 'container', 'comp': 'list'}
            if prefix:
                q['prefix'] = prefix
            if marker:
                q['marker'] = marker
            body = self._ok('GET', c, q)[1]
            names += [html.unescape(n.decode())
                      for n in re.findall(rb'<Blob>\s*<Name>([^<]*)</Name>', body)]
            m = re.search(rb'<NextMarker>([^<]+)</NextMarker>', body)
            if not m:
                return names
            marker = html.unescape(m.group(1).decode())

az = Az()
exec(sys.argv[1])
PY
}

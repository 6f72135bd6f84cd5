#!/usr/bin/python3
"""A fault injector for tests: a small HTTP/1.1 forwarding proxy placed in
front of a REAL server (radosgw, azurite, etcd, Consul). It is not a fake server: every
request it does not fail is passed through byte for byte (Host header
unchanged, so signatures still verify) and the real server answers.

  faultproxy.py PORTFILE UPSTREAM_PORT [--port P] [--fail N] [--match TEXT]
                [--status CODE] [--die-at N] [--stats FILE]
                [--delay SECONDS --delay-match TEXT]
                [--body-rate BYTES --body-rate-match TEXT]
                [--cut-body N --cut-match TEXT]
                [--rewrite OLD=NEW --rewrite-match TEXT]
                [--refuse-h2] [--json-error MESSAGE] [--h2-drop-answers N]

The first N requests whose request line contains TEXT get CODE (default 503)
with an S3/Azure-style XML error body instead of being forwarded. With
--die-at N the proxy exits at once, dropping every connection, when the Nth
request containing TEXT arrives: to the client the server is gone in the
middle of its work. With --delay, every request whose request line holds
the --delay-match text waits that long before it is passed on: a slow
server, giving a test time to act between two requests. With --body-rate,
the body of every request whose request line holds the --body-rate-match
text is taken at BYTES per second, through a small receive buffer: a
store on a slow link, where the upload keeps moving but takes long. With --cut-body,
the answer to every request whose request line holds the --cut-match text
stops after N bytes of its body and both connections drop: the server
went away in the middle of its answer. With --rewrite, the bytes OLD are
replaced by NEW (of the same length, so every length stays right) in the
body of every answer to a request whose line holds the --rewrite-match
text: a server that answers wrongly. With --refuse-h2, every HTTP/2 client
preface is answered with a 505, whatever --match says: a server that speaks
HTTP/1.1 only. With --json-error, an injected answer carries {"error":
MESSAGE, "message": MESSAGE} (the form of etcd's JSON gateway) instead of
the XML body. With --h2-drop-answers N,
connections that start with the HTTP/2 preface are passed through as they
are, frame by frame, and the first N answers the server starts (a HEADERS
frame on a stream) are dropped with both connections: the server did the
work, the client never hears of it. The proxy listens on port P (default:
any free one), writes that port to PORTFILE, and after every request writes
"requests=R injected=I delayed=D dropped=X" to the stats file.
"""
import argparse
import json
import os
import socket
import sys
import threading
import time

lock = threading.Lock()
counts = {'requests': 0, 'injected': 0, 'delayed': 0, 'dropped': 0}


def read_head(f):
    lines = []
    while True:
        line = f.readline(65537)
        if not line:
            return None
        lines.append(line)
        if line in (b'\r\n', b'\n'):
            return lines


def content_length(head):
    for line in head[1:]:
        name, _, value = line.partition(b':')
        if name.strip().lower() == b'content-length':
            return int(value.strip())
    return 0


def write_stats(path):
    if path:
        with open(path, 'w') as f:
            f.write('requests=%d injected=%d delayed=%d dropped=%d\n'
                    % (counts['requests'], counts['injected'], counts['delayed'], counts['dropped']))


class Body:
    """What happens to the bytes of one answer's body on their way."""
    def __init__(self):
        self.left = None      # bytes still to pass, or None: all
        self.rewrite = None   # (old, new) or None

    def pass_on(self, client, data):
        """Write data (or what the cut leaves of it); False once cut."""
        if self.rewrite:
            data = data.replace(*self.rewrite)
        if self.left is None:
            client.write(data)
            return True
        client.write(data[:self.left])
        self.left -= min(self.left, len(data))
        if self.left == 0:
            client.flush()
            return False
        return True


def relay_response(up, client, method, body=None):
    body = body or Body()
    head = read_head(up)
    if head is None:
        return False
    status = int(head[0].split()[1])
    client.write(b''.join(head))
    if method == b'HEAD' or status in (204, 304) or 100 <= status < 200:
        client.flush()
        return status >= 200 or relay_response(up, client, method, body)
    if any(l.lower().startswith(b'transfer-encoding:') and b'chunked' in l.lower() for l in head):
        while True:   # chunks, then the empty one and any trailers
            size_line = up.readline(65537)
            if not size_line:
                return False
            client.write(size_line)   # a cut chunk promises more than follows
            n = int(size_line.split(b';')[0].strip(), 16)
            if n == 0:
                tail = read_head(up)
                if tail is None:
                    return False
                client.write(b''.join(tail))
                client.flush()
                return True
            chunk = up.read(n + 2)
            if len(chunk) != n + 2:
                return False
            if not body.pass_on(client, chunk[:n]):
                return False
            client.write(chunk[n:])
    n = content_length(head)
    while n > 0:
        chunk = up.read(min(n, 1 << 20))
        if not chunk:
            return False
        if not body.pass_on(client, chunk):
            return False
        n -= len(chunk)
    client.flush()
    return True


def pass_h2(conn, client, head, args):
    """Relay an HTTP/2 connection whose preface (head) was read: the
    client's bytes as they come, the server's frame by frame, until an
    answer to drop (see --h2-drop-answers) or either side closes."""
    up_sock = socket.create_connection(('127.0.0.1', args.upstream))
    up_sock.sendall(b''.join(head))

    def client_to_server():
        try:
            while True:
                data = client.read1(65536)
                if not data:
                    break
                up_sock.sendall(data)
        except (OSError, ValueError):
            pass
        for s in (up_sock, conn):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    threading.Thread(target=client_to_server, daemon=True).start()
    up = up_sock.makefile('rb')
    try:
        while True:
            fh = up.read(9)
            if len(fh) != 9:
                return
            payload = up.read(int.from_bytes(fh[:3], 'big'))
            stream = int.from_bytes(fh[5:9], 'big') & 0x7fffffff
            if fh[3] == 1 and stream != 0:   # HEADERS: the server answers
                with lock:
                    drop = counts['dropped'] < args.h2_drop_answers
                    if drop:
                        counts['dropped'] += 1
                        write_stats(args.stats)
                if drop:
                    return
            conn.sendall(fh + payload)
    except (OSError, ValueError):
        return
    finally:
        for s in (up_sock, conn):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def read_slowly(client, n, rate):
    """n bytes of a request body, at rate bytes per second."""
    parts, got, t0 = [], 0, time.monotonic()
    while got < n:
        chunk = client.read(min(n - got, 16384))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
        ahead = got / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    return b''.join(parts)


def serve(conn, args):
    client = conn.makefile('rwb')
    up_sock = None
    up = None
    try:
        while True:
            head = read_head(client)
            if head is None:
                return
            method = head[0].split()[0]
            expect = [l for l in head if l.lower().startswith(b'expect:')]
            head = [l for l in head if not l.lower().startswith(b'expect:')]
            h2 = head[0].startswith(b'PRI * HTTP/2.0')
            if h2 and args.h2_drop_answers:
                pass_h2(conn, client, head, args)
                return
            with lock:
                counts['requests'] += 1
                inject = args.match.encode() in head[0] and counts['injected'] < args.fail
                if inject:
                    counts['injected'] += 1
                status = args.status
                if h2 and args.refuse_h2:   # not counted: --fail is for --match
                    inject, status = True, 505
                write_stats(args.stats)
            if expect and not inject:
                client.write(b'HTTP/1.1 100 Continue\r\n\r\n')
                client.flush()
            if args.die_at and args.match.encode() in head[0]:
                with lock:
                    counts['matched'] = counts.get('matched', 0) + 1
                    if counts['matched'] >= args.die_at:
                        os._exit(1)
            if inject and expect:   # the client holds its body back: answer and close
                client.write(b'HTTP/1.1 %d Injected\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
                             % status)
                client.flush()
                return
            n = content_length(head)
            if n and args.body_rate and args.body_rate_match.encode() in head[0]:
                body = read_slowly(client, n, args.body_rate)
            else:
                body = client.read(n) if n else b''
            if inject:
                msg = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable'
                       b'</Code><Message>injected by the test fault proxy</Message></Error>')
                ctype = b'application/xml'
                if args.json_error:
                    msg = json.dumps({'error': args.json_error, 'message': args.json_error}).encode()
                    ctype = b'application/json'
                if method == b'HEAD':
                    msg = b''
                client.write(b'HTTP/1.1 %d Injected\r\nContent-Type: %s\r\n'
                             b'Content-Length: %d\r\n\r\n' % (status, ctype, len(msg)) + msg)
                client.flush()
                continue
            if args.delay and args.delay_match.encode() in head[0]:
                with lock:
                    counts['delayed'] += 1
                    write_stats(args.stats)
                time.sleep(args.delay)
            if up is None:
                up_sock = socket.create_connection(('127.0.0.1', args.upstream))
                up = up_sock.makefile('rwb')
            up.write(b''.join(head) + body)
            up.flush()
            shaped = Body()
            if args.cut_match and args.cut_match.encode() in head[0]:
                shaped.left = args.cut_body
            if args.rewrite and args.rewrite_match.encode() in head[0]:
                old, _, new = args.rewrite.encode().partition(b'=')
                shaped.rewrite = (old, new)
            if not relay_response(up, client, method, shaped):
                return
    except (OSError, ValueError):
        return
    finally:
        for s in (up_sock, conn):
            try:
                s.close()
            except (OSError, AttributeError):
                pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument('portfile')
    p.add_argument('upstream', type=int)
    p.add_argument('--fail', type=int, default=0)
    p.add_argument('--match', default='')
    p.add_argument('--status', type=int, default=503)
    p.add_argument('--stats', default='')
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--die-at', type=int, default=0)
    p.add_argument('--delay', type=float, default=0)
    p.add_argument('--delay-match', default='')
    p.add_argument('--body-rate', type=float, default=0)
    p.add_argument('--body-rate-match', default='')
    p.add_argument('--cut-body', type=int, default=0)
    p.add_argument('--cut-match', default='')
    p.add_argument('--rewrite', default='')
    p.add_argument('--rewrite-match', default='')
    p.add_argument('--refuse-h2', action='store_true')
    p.add_argument('--json-error', default='')
    p.add_argument('--h2-drop-answers', type=int, default=0)
    args = p.parse_args()
    if args.rewrite:
        old, sep, new = args.rewrite.partition('=')
        if not sep or len(old.encode()) != len(new.encode()):
            p.error('--rewrite needs OLD=NEW of the same length')
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('127.0.0.1', args.port))
    srv.listen(64)
    with open(args.portfile + '.tmp', 'w') as f:
        f.write('%d\n' % srv.getsockname()[1])
    os.rename(args.portfile + '.tmp', args.portfile)
    while True:
        conn, _ = srv.accept()
        if args.body_rate:  # a small window, so the client's sends follow the rate
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        threading.Thread(target=serve, args=(conn, args), daemon=True).start()


if __name__ == '__main__':
    sys.exit(main())

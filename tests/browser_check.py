"""browser_check.py - opens a local HTML page in headless Chromium and reports what a person would see.

    browser_check.py CHROMIUM PAGE.html SCREENSHOT.png [--timeout S]

Drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: fds 3 and 4, messages
separated by NUL), so no port is opened and nothing but the file is loaded. A fresh --user-data-dir in a
temporary folder, --no-sandbox (we may be root in CI), and a time limit on everything. Prints one JSON
object: every <img> with its src, complete flag and naturalWidth, every console message and uncaught
exception, every failed load, and the screenshot's size. Exit 0 when the page loaded (the caller judges
the rest), 1 when Chromium could not load it within the time limit.

Standard library only: the test must not depend on anything pip would install.
"""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self, chromium, timeout):
        self.deadline = time.monotonic() + timeout
        self.profile = tempfile.mkdtemp(prefix="pb-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes answers on fd 4
        def child_fds():
            # move both ends above 9 first: either may be 3 or 4 already
            r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)
        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--user-data-dir=" + self.profile, "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--window-size=1280,2000", "--hide-scrollbars", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
            # Chromium puts its singleton socket in $TMPDIR/org.chromium.Chromium.XXXXXX and leaves it
            # behind when it is stopped: inside the profile, it goes with the profile
            env=dict(os.environ, TMPDIR=self.profile),
            preexec_fn=child_fds, pass_fds=(3, 4))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def close(self):
        try:
            os.close(self.to_browser)
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.from_browser)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self):
        import select
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer within the time limit")
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                time.sleep(0.2)
                with open(os.path.join(self.profile, "chromium.log"), "rb") as f:
                    tail = f.read()[-2000:].decode("utf-8", "replace")
                raise EOFError("Chromium closed the pipe (exit status %s); its log ends:\n%s" % (self.proc.poll(), tail))
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        want = self.next_id
        while True:
            m = self._read_message()
            if m.get("id") == want:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method):
        for i, m in enumerate(self.events):
            if m.get("method") == method:
                return self.events.pop(i)
        while True:
            m = self._read_message()
            if m.get("method") == method:
                return m
            self.events.append(m)


IMAGES_JS = """JSON.stringify(Array.from(document.images).map(function (i) {
  return {src: i.getAttribute('src'), complete: i.complete, naturalWidth: i.naturalWidth};
}))"""


def main():
    args = sys.argv[1:]
    timeout = 60.0
    if "--timeout" in args:
        k = args.index("--timeout")
        timeout = float(args[k + 1])
        del args[k:k + 2]
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    chromium, page, shot = args
    url = "file://" + os.path.abspath(page)
    b = Browser(chromium, timeout)
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            b.send(domain + ".enable", session=session)
        b.send("Page.navigate", {"url": url}, session=session)
        b.wait_event("Page.loadEventFired")
        # images are not lazy here, but give decoding a moment to settle after the load event
        b.send("Runtime.evaluate", {"expression": "new Promise(r => setTimeout(r, 200))", "awaitPromise": True},
               session=session)
        images = json.loads(b.send("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True},
                                   session=session)["result"]["value"])
        metrics = b.send("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics.get("contentSize")
        png = base64.b64decode(b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                      session=session)["data"])
        with open(shot, "wb") as f:
            f.write(png)
        console, failed = [], []
        for m in b.events:
            p = m.get("params", {})
            if m.get("method") == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                console.append({"level": p.get("type"), "text": text})
            elif m.get("method") == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                console.append({"level": "error", "text": "uncaught: " + str(d.get("text")) + " " +
                                str(d.get("exception", {}).get("description", ""))})
            elif m.get("method") == "Log.entryAdded":
                e = p.get("entry", {})
                console.append({"level": e.get("level"), "text": e.get("text", "") + " " + e.get("url", "")})
            elif m.get("method") == "Network.loadingFailed":
                failed.append(p.get("errorText"))
        # the PNG header gives the screenshot's pixel size
        width = int.from_bytes(png[16:20], "big") if png[:8] == b"\x89PNG\r\n\x1a\n" else 0
        height = int.from_bytes(png[20:24], "big") if width else 0
        print(json.dumps({"url": url, "images": images, "console": console, "failed_loads": failed,
                          "screenshot": {"path": shot, "bytes": len(png), "width": width, "height": height},
                          "page_size": {"width": size.get("width"), "height": size.get("height")}}, indent=1))
        return 0
    except (TimeoutError, EOFError, RuntimeError, KeyError) as e:
        print("browser_check: %s" % e, file=sys.stderr)
        return 1
    finally:
        b.close()


if __name__ == "__main__":
    sys.exit(main())

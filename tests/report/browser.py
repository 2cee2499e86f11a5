"""A headless Chromium driven over the DevTools protocol (python3-websocket): open a
page, record every network request it makes, measure elements, take a screenshot.
For the report test; Debian's chromium."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class Browser:
    def __init__(self, width=1200, height=900, start_timeout=120):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            raise RuntimeError("chromium not found (apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="moe-chromium-")
        self.proc, self.ws = None, None
        try:
            self.proc = subprocess.Popen(
                [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                 "--no-first-run", "--disable-background-networking", "--disable-extensions",
                 "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self.profile}",
                 f"--window-size={width},{height}", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.ws = websocket.create_connection(self._page_socket(start_timeout), timeout=60)
            self.next_id, self.events = 0, []
            self.call("Network.enable")
            self.call("Page.enable")
        except BaseException:
            self.close()
            raise

    def _page_socket(self, timeout):
        """The DevTools websocket of the first page, once chromium has written its port."""
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode} before listening")
            if os.path.isfile(port_file) and read(port_file).strip():
                port = int(read(port_file).split()[0])
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                        pages = [p for p in json.load(r) if p.get("type") == "page"]
                    if pages:
                        return pages[0]["webSocketDebuggerUrl"]
                except OSError:
                    pass  # not listening yet
            time.sleep(0.2)
        raise RuntimeError(f"chromium did not open its DevTools port within {timeout} s")

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def requests(self):
        """Every URL requested since the last open(), including after the load event."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def open(self, url, timeout=60):
        """Navigate and wait for the load event; returns the URLs the page requested."""
        self.events = []
        self.call("Page.navigate", url=url)
        deadline = time.time() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.time() > deadline:
                raise RuntimeError(f"{url}: no load event in {timeout} s")
            self.events.append(json.loads(self.ws.recv()))
        return self.requests()

    def eval(self, js):
        r = self.call("Runtime.evaluate", expression=js, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"javascript failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path, width, height):
        """The whole page (width x height CSS pixels at scale 1) as a PNG file."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        r = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def close(self):
        try:
            if self.ws is not None:
                self.ws.close()
        finally:
            if self.proc is not None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)

#!/usr/bin/python3
"""A small fota device speaking only the MQTT contract (docs/protocol.md,
"MQTT devices"): it announces itself, takes an upgrade (a cloud push, or
one it asks for with --request), downloads and verifies the image, reports
its progress and informs its new version.

Debian 12: python3-paho-mqtt (1.6.x API) and python3-cryptography.

Exit codes with --once:
  0 upgraded (the new version was informed and acknowledged)
  1 bad usage, or the broker could not be reached
  2 the image or its manifest did not verify (progress -3 was reported)
  3 the download failed (progress -2 was reported)
  4 timed out before an upgrade completed
  5 --request: the cloud had no upgrade to offer (or refused the request)
"""

import argparse
import base64
import hashlib
import json
import queue
import sys
import time
import urllib.parse
import urllib.request

import paho.mqtt.client as mqtt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EXIT_UPGRADED, EXIT_USAGE, EXIT_VERIFY, EXIT_DOWNLOAD, EXIT_TIMEOUT, EXIT_NO_OFFER = range(6)
MANIFEST_HEADER = "fota-firmware-manifest-v1"
CHUNK = 64 * 1024


class UpgradeError(Exception):
    """A failed upgrade: `step` is the progress code reported (-2, -3)."""

    def __init__(self, step, desc):
        super().__init__(desc)
        self.step = step
        self.desc = desc


def load_public_key(spec):
    """A PEM public key file, or the base64 of the key's 32 raw bytes."""
    try:
        with open(spec, "rb") as f:
            data = f.read()
    except OSError:
        data = None
    if data is not None:
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{spec}: not an Ed25519 public key")
        return key
    raw = base64.b64decode(spec, validate=True)
    if len(raw) != 32:
        raise ValueError(f"public key: an Ed25519 key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def parse_manifest(text):
    """The fields of a canonical manifest, or UpgradeError naming the problem."""
    lines = text.split("\n")
    if len(lines) != 7 or lines[6] != "" or lines[0] != MANIFEST_HEADER:
        raise UpgradeError(-3, "manifest: not a fota-firmware-manifest-v1 text")
    fields = {}
    for line, name in zip(lines[1:6], ("product", "version", "size", "sha256", "url")):
        prefix = name + "="
        if not line.startswith(prefix):
            raise UpgradeError(-3, f"manifest: expected line {prefix}..., got {line!r}")
        fields[name] = line[len(prefix):]
    return fields


def verify_offer(params, product, public_key):
    """Checks the offer's manifest against the offer, and its signature when
    the device has the product's key. Returns nothing; raises UpgradeError."""
    try:
        manifest = base64.b64decode(params.get("manifest", ""), validate=True)
        signature = base64.b64decode(params.get("signature", ""), validate=True)
    except ValueError as e:
        raise UpgradeError(-3, f"manifest or signature: bad base64: {e}")
    if public_key is None:
        return  # unsigned products: fileSize and sign are checked after download
    if not signature:
        raise UpgradeError(-3, "firmware is not signed; this device accepts only signed firmware")
    try:
        public_key.verify(signature, manifest)
    except InvalidSignature:
        raise UpgradeError(-3, "manifest signature does not verify with the product key")
    fields = parse_manifest(manifest.decode("utf-8", errors="replace"))
    expected = {
        "product": product,
        "version": str(params["version"]),
        "size": str(params["fileSize"]),
        "sha256": str(params["sign"]).lower(),
        "url": str(params["fileUrl"]),
    }
    for name, value in expected.items():
        if fields[name] != value:
            raise UpgradeError(-3, f"manifest {name}={fields[name]!r} differs from the offer's {value!r}")


def download(url, size, timeout):
    """Streams the image, returns its SHA-256 hex; checks it is `size` bytes."""
    parsed = urllib.parse.urlparse(url)
    try:
        if parsed.scheme == "file":
            stream = open(urllib.request.url2pathname(parsed.path), "rb")
        elif parsed.scheme in ("http", "https"):
            stream = urllib.request.urlopen(url, timeout=timeout)
        else:
            raise UpgradeError(-2, f"fileUrl: scheme {parsed.scheme!r} is not supported")
        digest, got = hashlib.sha256(), 0
        with stream:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                got += len(chunk)
                if got > size:
                    raise UpgradeError(-3, f"image is larger than fileSize {size}")
                digest.update(chunk)
    except OSError as e:
        raise UpgradeError(-2, f"download of {url} failed: {e}")
    if got != size:
        raise UpgradeError(-3, f"image is {got} bytes, fileSize says {size}")
    return digest.hexdigest()


class Device:
    def __init__(self, args, public_key):
        self.args = args
        self.public_key = public_key
        self.version = args.version
        self.base = f"/sys/{args.product}/{args.device}/ota/device/"
        self.events = queue.Queue()
        self.next_id = 1
        self.acked = set()  # push ids already acknowledged
        self.done = set()  # executionIds completed here
        self.client = mqtt.Client(client_id=args.client_id or f"{args.product}.{args.device}",
                                  clean_session=True, protocol=mqtt.MQTTv311)
        self.client.will_set(self.base + "status", json.dumps({"online": False}), qos=1, retain=True)
        self.client.on_connect = self.on_connect
        self.client.on_message = self.on_message

    def log(self, text):
        print(f"[{self.args.product}/{self.args.device}] {text}", flush=True)

    # --- network thread: callbacks only queue events ---
    def on_connect(self, client, userdata, flags, rc):
        self.events.put(("connect", rc))

    def on_message(self, client, userdata, msg):
        self.events.put(("message", msg.topic, msg.payload))

    # --- main thread ---
    def publish(self, suffix, payload, retain=False):
        self.last_publish = self.client.publish(self.base + suffix, json.dumps(payload), qos=1, retain=retain)

    def request(self, suffix, method, params):
        request_id = str(self.next_id)
        self.next_id += 1
        self.publish(suffix, {"id": request_id, "version": "1.0", "method": method, "params": params})
        return request_id

    def progress(self, execution_id, step, desc):
        self.request("progress", "ota.device.progress",
                     {"step": step, "desc": desc, "executionId": execution_id})
        self.log(f"progress {step}: {desc}")

    def inform(self):
        self.inform_id = self.request("inform", "ota.device.inform", {"version": self.version})
        self.log(f"informed version {self.version}")

    def on_connected(self):
        for suffix in ("upgrade", "inform_reply", "getversion_reply", "progress_reply", "cancel"):
            self.client.subscribe(self.base + suffix, qos=1)
        self.publish("status", {"online": True}, retain=True)
        self.inform()
        if self.args.request:
            self.getversion_id = self.request("getversion", "ota.device.getversion", {})
            self.log("asked for an upgrade")

    def upgrade(self, params):
        """Downloads, verifies and 'flashes' the offer; returns an exit code."""
        execution_id = params.get("executionId", 0)
        try:
            for field, kind in (("version", str), ("fileUrl", str), ("fileSize", int), ("sign", str)):
                if not isinstance(params.get(field), kind):
                    raise UpgradeError(-1, f"offer field {field} is missing or not a {kind.__name__}")
            if params.get("signMethod", "sha256") != "sha256":
                raise UpgradeError(-3, f"signMethod {params['signMethod']!r} is not supported")
            verify_offer(params, self.args.product, self.public_key)
            self.progress(execution_id, 10, f"downloading {params['fileUrl']}")
            sha = download(params["fileUrl"], params["fileSize"], self.args.timeout)
            self.progress(execution_id, 60, "downloaded")
            if sha != params["sign"].lower():
                raise UpgradeError(-3, f"image sha256 {sha} differs from sign {params['sign']}")
            self.progress(execution_id, 80, "verified")
            self.progress(execution_id, 100, f"flashed {params['version']}")
        except UpgradeError as e:
            self.progress(execution_id, e.step, e.desc)
            return EXIT_VERIFY if e.step == -3 else EXIT_DOWNLOAD
        self.version = params["version"]
        self.done.add(execution_id)
        self.inform()
        return None  # finished when the inform is acknowledged

    def on_push(self, payload):
        push_id = str(payload.get("id", ""))
        params = payload.get("params") or {}
        self.publish("upgrade_reply", {"id": push_id, "code": 200})
        if push_id in self.acked:
            self.log(f"push {push_id} again: acknowledged, not restarted")
            return None
        self.acked.add(push_id)
        execution_id = params.get("executionId", 0)
        if execution_id in self.done:
            self.log(f"push {push_id}: execution already done, informing again")
            self.inform()
            return None
        self.log(f"push {push_id}: upgrade to {params.get('version')}")
        return self.upgrade(params)

    def handle(self, topic, raw):
        """Handles one message; returns an exit code when --once is over."""
        try:
            payload = json.loads(raw)
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            self.log(f"{topic}: ignored bad payload ({e})")
            return None
        suffix = topic[len(self.base):]
        if suffix == "upgrade":
            return self.on_push(payload)
        if suffix == "cancel":
            self.log(f"cancel of execution {payload.get('params', {}).get('executionId')}")
            return None
        code = payload.get("code")
        if code != 200:
            self.log(f"{suffix} {payload.get('id')}: code {code}: {payload.get('message', '')}")
        if suffix == "inform_reply" and str(payload.get("id")) == getattr(self, "inform_id", None):
            if code == 200 and self.done:
                self.log(f"upgraded to {self.version}")
                return EXIT_UPGRADED
        elif suffix == "getversion_reply" and str(payload.get("id")) == getattr(self, "getversion_id", None):
            data = payload.get("data") or {}
            if code != 200 or not data:
                self.log(f"no upgrade offered: {payload.get('message', '')}")
                return EXIT_NO_OFFER
            self.log(f"offered {data.get('version')} (execution {data.get('executionId')})")
            if data.get("executionId", 0) in self.done:
                return None
            return self.upgrade(data)
        return None

    def run(self):
        try:
            self.client.connect(self.args.host, self.args.port, keepalive=30)
        except OSError as e:
            print(f"cannot connect to {self.args.host}:{self.args.port}: {e}", file=sys.stderr)
            return EXIT_USAGE
        self.client.loop_start()
        deadline = time.monotonic() + self.args.timeout if self.args.once else None
        result = None
        try:
            while True:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    self.log("timed out")
                    result = EXIT_TIMEOUT
                    break
                try:
                    event = self.events.get(timeout=wait)
                except queue.Empty:
                    continue
                if event[0] == "connect":
                    if event[1] != 0:
                        print(f"broker refused the connection: {mqtt.connack_string(event[1])}", file=sys.stderr)
                        result = EXIT_USAGE
                        break
                    self.on_connected()
                    continue
                code = self.handle(event[1], event[2])
                if code is not None and self.args.once:
                    result = code
                    break
        except KeyboardInterrupt:
            result = 0
        # A clean disconnect does not fire the will: say offline ourselves.
        if self.client.is_connected():
            self.publish("status", {"online": False}, retain=True)
            self.last_publish.wait_for_publish(timeout=5)  # QoS 1 is in order: all earlier ones are out
        self.client.disconnect()
        self.client.loop_stop()
        return result


def main():
    p = argparse.ArgumentParser(description="fota example device (MQTT)")
    p.add_argument("--host", default="127.0.0.1", help="broker host")
    p.add_argument("--port", type=int, default=1883, help="broker port")
    p.add_argument("--product", required=True, help="product key")
    p.add_argument("--device", required=True, help="device key")
    p.add_argument("--version", required=True, help="current firmware version")
    p.add_argument("--public-key", help="product public key: PEM file or base64 of the 32 raw bytes; "
                   "when given, only firmware whose manifest it verifies is accepted")
    p.add_argument("--request", action="store_true", help="ask for an upgrade (getversion) instead of waiting for a push")
    p.add_argument("--once", action="store_true", help="exit after one upgrade or --timeout (exit code says what happened)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds for --once and for downloads (default 60)")
    p.add_argument("--client-id", help="MQTT client id (default product.device)")
    args = p.parse_args()
    try:
        public_key = load_public_key(args.public_key) if args.public_key else None
    except ValueError as e:
        print(f"--public-key: {e}", file=sys.stderr)
        return EXIT_USAGE
    return Device(args, public_key).run()


if __name__ == "__main__":
    sys.exit(main())

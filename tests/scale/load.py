"""The scale test's client (tests/scale/run.sh): a mixed checkout load through the load
balancer, and RabbitMQ's side of "every event published once per id".

  load.py load URL API_KEY SECONDS CLIENTS OUT   checkouts until SECONDS pass; outcomes to OUT
  load.py bind AMQP_URL EXCHANGE QUEUE           a queue taking every event of EXCHANGE
  load.py drain AMQP_URL QUEUE OUT               the message ids in QUEUE, one a line, to OUT

A request that finds no instance (connection refused or reset, 502/503/504 from the balancer
while an instance is killed or drains) is sent again with the same Idempotency-Key, so it
takes effect once. A request the killed instance was serving left its key claimed: the
retry is answered 409 `idempotency_key_in_use` until Till takes the claim over (after a
minute), and is sent again until then. Any other 5xx, or a request still without an answer
after 90 s, fails the run.
"""

import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request

RETRYABLE = {502, 503, 504}
SOURCES = [
    ("card", "pm_card_visa"),
    ("card", "pm_card_visa"),
    ("card", "pm_card_chargeDeclined"),
    ("card", "pm_card_authenticationRequired"),  # 3-D Secure never finished: it expires
    ("upi", "success@razorpay"),
    ("wallet", "paytm"),
]


def call(url, key, method, path, body=None, idem=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    if idem:
        headers["Idempotency-Key"] = idem
    deadline = time.time() + 90
    while True:
        req = urllib.request.Request(url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null"), None
        except urllib.error.HTTPError as err:
            text = err.read()
            try:
                body = json.loads(text)
            except ValueError:
                body = text.decode(errors="replace")
            code = body.get("error", {}).get("code") if isinstance(body, dict) else None
            if err.code not in RETRYABLE and code != "idempotency_key_in_use":
                return err.code, body, None
            why = "HTTP %d %s" % (err.code, code or "")
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            why = str(err)
        if time.time() > deadline:
            return None, None, "%s %s: no answer within 90 s (%s)" % (method, path, why)
        time.sleep(0.2)


def load(url, key, seconds, clients, out):
    stop = time.time() + float(seconds)
    lock = threading.Lock()
    outcomes = {"orders": 0, "failures": []}

    def note(name):
        with lock:
            outcomes[name] = outcomes.get(name, 0) + 1

    def client(n):
        rng = random.Random(n)
        i = 0
        while time.time() < stop:
            i += 1
            tag = "scale-%d-%d-%d" % (n, i, rng.randrange(1 << 30))
            sku = "SCALE-%d" % rng.randrange(8)
            order = {"customer": {"id": "u_" + tag, "email": "buyer@example.com"},
                     "items": [{"sku": sku, "qty": 1 + rng.randrange(2)}]}
            status, body, err = call(url, key, "POST", "/v1/orders", order, idem=tag + "-o")
            if err or status >= 500:
                with lock:
                    outcomes["failures"].append(err or "create %s: %s" % (status, body))
                continue
            if status == 409 and body.get("error", {}).get("code") == "out_of_stock":
                note("out_of_stock")
                continue
            if status != 201:
                with lock:
                    outcomes["failures"].append("create %s: %s" % (status, body))
                continue
            note("orders")
            method, source = rng.choice(SOURCES)
            pay = {"method": method, "source": source}
            status, body, err = call(url, key, "POST", "/v1/orders/%s/payments" % body["id"],
                                     pay, idem=tag + "-p")
            if err or status >= 500:
                with lock:
                    outcomes["failures"].append(err or "pay %s: %s" % (status, body))
                continue
            code = body.get("error", {}).get("code", "") if isinstance(body, dict) else ""
            note(("pay_%d_%s" % (status, code)).rstrip("_"))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(int(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(out, "w") as f:
        json.dump(outcomes, f, indent=1)
    print("scale: load:", json.dumps({k: v for k, v in outcomes.items() if k != "failures"}),
          "failures:", len(outcomes["failures"]))
    for failure in outcomes["failures"][:10]:
        print("scale: load failure:", failure, file=sys.stderr)
    return 1 if outcomes["failures"] or outcomes["orders"] == 0 else 0


def channel(amqp_url):
    import pika
    return pika.BlockingConnection(pika.URLParameters(amqp_url)).channel()


def bind(amqp_url, exchange, queue):
    ch = channel(amqp_url)
    ch.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    ch.queue_declare(queue=queue, durable=False, auto_delete=False)
    ch.queue_bind(queue=queue, exchange=exchange, routing_key="#")
    ch.connection.close()
    return 0


def drain(amqp_url, queue, out):
    ch = channel(amqp_url)
    ids = []
    while True:
        method, props, _body = ch.basic_get(queue=queue, auto_ack=True)
        if method is None:
            break
        ids.append(props.message_id or "")
    ch.queue_delete(queue=queue)
    ch.connection.close()
    with open(out, "w") as f:
        f.write("".join(i + "\n" for i in ids))
    return 0


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    sys.exit({"load": load, "bind": bind, "drain": drain}[command](*args))

"""An SMTP relay for queue-send's tests, on aiosmtpd (Debian's
python3-aiosmtpd): a real, independently written SMTP server.

    relay.py PORT LOG [RULES.json]

Prints "ready" when listening. Every accepted message is a block of
`key=value` lines in LOG, ended by an empty line: the client's port (one per connection), MAIL FROM and its options,
the accepted recipients, the content exactly as received (base64, after
the server's dot-unstuffing, CRLF kept) and, parsed with Python's email
package, the MIME structure of reports (for bounces).

RULES scripts refusals: {"rcpt": {"ADDR": ["550 5.1.1 no such user"]},
"data": ["451 4.3.0 try later"], "ehlo": "502 5.5.1 no"}: each list is
consumed one reply per use (RCPT of that address, or DATA); an empty list
accepts; "ehlo" refuses every EHLO with that reply. In "data", CLOSE
drops the connection instead of answering, SILENCE answers after 30 s.
"""
import asyncio
import base64
import email
import email.policy
import json
import sys
import time

from aiosmtpd.controller import Controller

port = int(sys.argv[1])
log = sys.argv[2]
rules = {}
if len(sys.argv) > 3:
    with open(sys.argv[3]) as f:
        rules = json.load(f)


def report(content):
    msg = email.message_from_bytes(content, policy=email.policy.compat32)
    out = {"type": msg.get_content_type(), "report_type": msg.get_param("report-type")}
    if msg.is_multipart():
        out["parts"] = [p.get_content_type() for p in msg.get_payload()]
        for p in msg.get_payload():
            if p.get_content_type() == "message/delivery-status":
                # Per-message fields, then one block per recipient.
                out["status"] = [dict(b.items()) for b in p.get_payload()]
            if p.get_content_type() == "text/rfc822-headers":
                out["headers"] = p.get_payload()
    return out


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if rules.get("ehlo"):
            return [rules["ehlo"]]
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        script = rules.get("rcpt", {}).get(address)
        if script:
            return script.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        script = rules.get("data")
        if script:
            reply = script.pop(0)
            if reply == "CLOSE":
                # The connection drops after the data, before any reply.
                server.transport.close()
                return "421 closing"
            if reply == "SILENCE":
                await asyncio.sleep(30)
            return reply
        content = envelope.original_content
        rec = {
            "peer_port": str(session.peer[1]),
            "helo": session.host_name or "",
            "esmtp": str(session.extended_smtp),
            "mail_from": envelope.mail_from,
            "mail_options": " ".join(envelope.mail_options),
            "rcpt_tos": " ".join(envelope.rcpt_tos),
            "content": base64.b64encode(content).decode(),
        }
        r = report(content)
        rec["type"] = r["type"]
        rec["report_type"] = r["report_type"] or ""
        rec["parts"] = " ".join(r.get("parts", []))
        rec["headers"] = base64.b64encode((r.get("headers") or "").encode()).decode()
        for i, block in enumerate(r.get("status", [])):
            for k, v in block.items():
                rec["status.%d.%s" % (i, k)] = " ".join(v.split())
        with open(log, "a") as f:
            f.write("".join("%s=%s\n" % (k, v) for k, v in rec.items()) + "\n")
        return "250 2.0.0 accepted"


controller = Controller(Handler(), hostname="127.0.0.1", port=port, decode_data=False)
controller.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
finally:
    controller.stop()

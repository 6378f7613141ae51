"""Checks group-robot messages as WeCom and DingTalk document them, independently of
Gridline's code.

Reads one JSON object per line on stdin: {"robot": "wecom" | "dingtalk", "secret": "…",
"target": "/path?query", "content_type": "…", "body": "…"}. Prints `<robot> <content>` per
message that passes; exits 1 at the first that does not, saying why.

WeCom group robot (企业微信群机器人, "消息推送配置说明"): POST to
/cgi-bin/webhook/send?key=KEY, JSON {"msgtype": "text", "text": {"content": "…"}}, the content
at most 2048 bytes of UTF-8.

DingTalk custom robot (钉钉自定义机器人, "自定义机器人安全设置" → 加签): POST to
/robot/send?access_token=TOKEN&timestamp=T&sign=S where T is the sending time in milliseconds
(refused when more than an hour off) and S is, in the documentation's own Python:
    string_to_sign = '{}\n{}'.format(timestamp, secret)
    hmac_code = hmac.new(secret.encode('utf-8'), string_to_sign.encode('utf-8'),
                         digestmod=hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(hmac_code))
and a body {"msgtype": "text", "text": {"content": "…"}}.
"""
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.parse


def fail(why):
    print(f"NOT AS DOCUMENTED: {why}", file=sys.stderr)
    sys.exit(1)


def text_content(item):
    if not item["content_type"].startswith("application/json"):
        fail(f"content type {item['content_type']!r}")
    body = json.loads(item["body"])
    if body.get("msgtype") != "text":
        fail(f"msgtype {body.get('msgtype')!r}")
    content = body.get("text", {}).get("content")
    if not isinstance(content, str) or not content:
        fail("no text.content")
    return content


for line in sys.stdin:
    if not line.strip():
        continue
    item = json.loads(line)
    target = urllib.parse.urlsplit(item["target"])
    query = urllib.parse.parse_qs(target.query)
    if item["robot"] == "wecom":
        if target.path != "/cgi-bin/webhook/send" or not query.get("key"):
            fail(f"WeCom target {item['target']!r}")
        content = text_content(item)
        if len(content.encode("utf-8")) > 2048:
            fail("a WeCom text over 2048 bytes")
    elif item["robot"] == "dingtalk":
        if target.path != "/robot/send" or not query.get("access_token"):
            fail(f"DingTalk target {item['target']!r}")
        timestamp = query.get("timestamp", [""])[0]
        if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > 3600 * 1000:
            fail(f"timestamp {timestamp!r} not within an hour of now")
        secret = item["secret"]
        string_to_sign = "{}\n{}".format(timestamp, secret)
        hmac_code = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"),
                             digestmod=hashlib.sha256).digest()
        expected = urllib.parse.quote_plus(base64.b64encode(hmac_code))
        # The query as sent, still encoded, against the documented encoding.
        sent = [p.split("=", 1)[1] for p in target.query.split("&") if p.startswith("sign=")]
        if sent != [expected]:
            fail(f"sign {sent!r}, expected {expected!r}")
        content = text_content(item)
    else:
        fail(f"unknown robot {item['robot']!r}")
    print(item["robot"], content.replace("\n", " "))

#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the examples of
docs/protocol.md (sections 3, 5, 6 and 9). Run from anywhere:

    python3 fuzz/seeds.py

It rewrites fuzz/corpus/<target>/seed-*; the inputs libFuzzer adds (named by
their SHA-1) are left alone and are not committed.

`request` inputs start with two control bytes and the AMQP properties (see
fuzz/fuzz_targets/request.rs), then the body as a requester sends it.
`outcome_list` inputs are stored values as they are.
"""

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"

# Call records the request target's store can answer (byte 0, bits 4-6).
SAMPLE, ANY_ACCOUNT, NO_CAMPAIGN, BLANK_CAMPAIGN, MISSING, BAD_DATA, PADDED, LONG_CAMPAIGN = range(8)
# Outcome lists (byte 1).
TREE, NO_LIST, CORRUPT, LIST_BAD_DATA, EMPTY, ODD = range(6)


def request_input(body, call=SAMPLE, outcomes=TREE, reply_to=None, correlation_id=None,
                  message_id=None, app_id=None):
    props = [reply_to, correlation_id, message_id, app_id]
    flags = call << 4
    head = b""
    for bit, value in enumerate(props):
        if value is None:
            continue
        flags |= 1 << bit
        value = value if isinstance(value, bytes) else value.encode()
        assert len(value) < 256
        head += bytes([len(value)]) + value
    if isinstance(body, (dict, list)):
        body = json.dumps(body, ensure_ascii=False).encode()
    elif isinstance(body, str):
        body = body.encode()
    return bytes([flags, outcomes]) + head + body


def envelope(data, subtopic="GetBusinessOutCome", **extra):
    body = {"channel": "LCM", "topic": "WebService", "subtopic": subtopic}
    body.update(extra)
    body["data"] = data
    return body


SAMPLE_DATA = {"callid": "12345", "AccountNumber": "5|3|1|0|0|44|1"}

REQUESTS = {
    # Section 3: the sample request, answered by source.
    "sample": request_input(envelope(SAMPLE_DATA, source="agent-desktop-eu")),
    # Direct Reply-to with a correlation id, the way `lcm-worker request` asks.
    "sample-reply-to": request_input(
        envelope(SAMPLE_DATA), reply_to="amq.rabbitmq.reply-to.g1h2AA==",
        correlation_id="c-1", message_id="m-1"),
    # Routed by app_id only (section 4, step 3).
    "sample-app-id": request_input(envelope(SAMPLE_DATA), app_id="crm-connector"),
    # No route at all: dead-lettered.
    "no-route": request_input(envelope(SAMPLE_DATA)),
    # Properties that were not UTF-8 on the wire (decoded with U+FFFD).
    "props-not-utf8": request_input(
        envelope(SAMPLE_DATA), reply_to=b"q\xff\xfe", correlation_id=b"\xc3", app_id=b"\x80app"),
    # Section 3: the documentation's own spellings, case-insensitive keys.
    "spellings": request_input(
        {"channel": "lcm", "topic": "Webservice", "subtopic": "getbusinessoutcome",
         "data": {"CALLID": " 12345 ", "accountnumber": " 5|3|1|0|0|44|1 "}},
        reply_to="q"),
    # Numbers as callid and AccountNumber.
    "numbers": request_input(envelope({"callid": 12345, "AccountNumber": 44}), reply_to="q",
                             call=ANY_ACCOUNT),
    "numbers-float": request_input(
        '{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome",'
        '"data":{"callid":1.5e3,"AccountNumber":-0.0}}', reply_to="q", call=ANY_ACCOUNT),
    "numbers-big": request_input(
        '{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome",'
        '"data":{"callid":123456789012345678901234567890,"AccountNumber":18446744073709551615}}',
        reply_to="q", call=ANY_ACCOUNT),
    # data as a string holding the object.
    "data-string": request_input(envelope(json.dumps(SAMPLE_DATA)), reply_to="q"),
    # Section 9: the parent request.
    "parent": request_input(envelope(
        dict(SAMPLE_DATA, ParentBusinessOutcomeId="101"), subtopic="GetBusinessOutcomeParent",
        source="agent-desktop-eu")),
    "parent-number": request_input(envelope(
        dict(SAMPLE_DATA, ParentBusinessOutcomeId=101), subtopic="GetBusinessOutcomeParent"),
        reply_to="q"),
    "parent-empty": request_input(envelope(
        dict(SAMPLE_DATA, ParentBusinessOutcomeId=" "), subtopic="GetBusinessOutcomeParent"),
        reply_to="q"),
    "parent-unknown": request_input(envelope(
        dict(SAMPLE_DATA, ParentBusinessOutcomeId="99"), subtopic="GetBusinessOutcomeParent"),
        reply_to="q"),
    "parent-no-children": request_input(envelope(
        dict(SAMPLE_DATA, ParentBusinessOutcomeId="102"), subtopic="GetBusinessOutcomeParent"),
        reply_to="q"),
    # Section 5, the error table, row by row.
    "error-callid-missing": request_input(envelope({"AccountNumber": "1"}), reply_to="q"),
    "error-callid-null": request_input(envelope({"callid": None, "AccountNumber": "1"}), reply_to="q"),
    "error-callid-blank": request_input(envelope({"callid": " \t", "AccountNumber": "1"}), reply_to="q"),
    "error-callid-unknown": request_input(envelope(SAMPLE_DATA), reply_to="q", call=MISSING),
    "error-callid-long": request_input(
        envelope({"callid": "é" * 100, "AccountNumber": "1"}), reply_to="q"),
    "error-callid-control": request_input(
        envelope({"callid": "12\u000345", "AccountNumber": "1"}), reply_to="q"),
    "error-callid-unreadable": request_input(envelope(SAMPLE_DATA), reply_to="q", call=BAD_DATA),
    "error-no-campaign": request_input(envelope(SAMPLE_DATA), reply_to="q", call=NO_CAMPAIGN),
    "error-blank-campaign": request_input(envelope(SAMPLE_DATA), reply_to="q", call=BLANK_CAMPAIGN),
    "error-account-missing": request_input(envelope({"callid": "12345"}), reply_to="q"),
    "error-account-differs": request_input(
        envelope({"callid": "12345", "AccountNumber": "9" * 200}), reply_to="q"),
    "account-padded": request_input(envelope(SAMPLE_DATA), reply_to="q", call=PADDED),
    "error-corrupt-list": request_input(envelope(SAMPLE_DATA), reply_to="q", outcomes=CORRUPT),
    "error-corrupt-long-campaign": request_input(
        envelope(SAMPLE_DATA), reply_to="q", call=LONG_CAMPAIGN, outcomes=CORRUPT),
    "error-list-unreadable": request_input(envelope(SAMPLE_DATA), reply_to="q", outcomes=LIST_BAD_DATA),
    "no-list": request_input(envelope(SAMPLE_DATA), reply_to="q", outcomes=NO_LIST),
    "empty-list": request_input(envelope(SAMPLE_DATA), reply_to="q", outcomes=EMPTY),
    "odd-list": request_input(envelope(SAMPLE_DATA), reply_to="q", outcomes=ODD),
    "error-not-json": request_input("{\"channel\": \"LCM\",", reply_to="q"),
    "error-not-utf8": request_input(b"{\"channel\":\"LCM\xff\"}", reply_to="q"),
    "error-not-object": request_input("[1,2,3]", reply_to="q"),
    "error-channel": request_input(dict(envelope(SAMPLE_DATA), channel="XYZ"), reply_to="q"),
    "error-topic": request_input(dict(envelope(SAMPLE_DATA), topic=5), reply_to="q"),
    "error-data-missing": request_input(
        {"channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutcome"}, reply_to="q"),
    "error-data-array": request_input(envelope([1]), reply_to="q"),
    "error-data-string-not-object": request_input(envelope("[1]"), reply_to="q"),
    "error-callid-object": request_input(envelope({"callid": {}, "AccountNumber": "1"}), reply_to="q"),
    "error-subtopic": request_input(envelope(SAMPLE_DATA, subtopic="GetCampaigns"), reply_to="q"),
    "error-subtopic-missing": request_input(
        {"channel": "LCM", "topic": "WebService", "data": SAMPLE_DATA}, reply_to="q"),
    # No reply loops: the worker's own app_id as the only route, and a
    # WS_Error sent back in (issue 15).
    "own-app-id": request_input("not even JSON", app_id="lcm-outcome-worker"),
    "ws-error-loop": request_input(
        {"channel": "LCM", "topic": "WebService", "subtopic": "ws_error",
         "message": {"callid": "1", "errorType": "WS_Error"}}, app_id="crm-connector"),
    # A correlation id of the report's bytes (header keys are not part of
    # this target's input; the integration tests cover them).
    "correlation-only-invalid": request_input(
        envelope(SAMPLE_DATA), reply_to="q", correlation_id=b"\xff\xfe-bad"),
    # No reply loops: a reply sent back in.
    "reply-loop": request_input(
        {"channel": "LCM", "topic": "WebService", "subtopic": "BusinessOutCome",
         "message": {"callid": "12345", "response": []}}, reply_to="q"),
}

LISTS = {
    # Section 6: the Redis example.
    "example": '[{"OutComeID":"101","Description":"Payment Done","LeadScore":"0","ParentID":null},'
               '{"OutComeID":"102","Description":"Payment Failure"}]',
    # Section 5: the sample response's elements as stored (CampaignID ignored).
    "sample-response": '[{"OutComeID": "101", "Description": "Payment Done", "CampaignID": "1", '
                       '"LeadScore": "0", "ParentID": null}, {"OutComeID": "102", "Description": '
                       '"Payment Failure", "CampaignID": "1", "LeadScore": "0", "ParentID": null}]',
    # Numbers as ids, a two-level tree (section 9).
    "tree": '[{"OutComeID":1,"Description":"Reached"},{"OutComeID":"11","Description":"Paid",'
            '"ParentID":"1"},{"OutComeID":2,"Description":"No answer","LeadScore":7},'
            '{"OutComeID":"12","Description":"Promise","ParentID":1,"CampaignID":"99"}]',
    "numbers": '[{"OutComeID":-1.5e300,"Description":"x","LeadScore":18446744073709551616,'
               '"ParentID":0}]',
    "escapes": '[{"OutComeID":"\\u00e9","Description":"\\ud83d\\ude00 \\"q\\" \\\\ \\n \\u0000"}]',
    "empty": "[]",
    # Corrupt lists (section 5, check 6).
    "corrupt-object": '{"OutComeID":"1"}',
    "corrupt-element": "[1]",
    "corrupt-no-id": '[{"Description":"no id"}]',
    "corrupt-no-description": '[{"OutComeID":"1"}]',
    "corrupt-id-type": '[{"OutComeID":true,"Description":"x"}]',
    "corrupt-lead-score": '[{"OutComeID":"1","Description":"x","LeadScore":[1]}]',
    "corrupt-parent": '[{"OutComeID":"1","Description":"x","ParentID":{}}]',
    "corrupt-truncated": '[{"OutComeID":"1","Descr',
}


def write(target, seeds):
    folder = ROOT / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("seed-*"):
        old.unlink()
    for name, content in seeds.items():
        if isinstance(content, str):
            content = content.encode()
        (folder / f"seed-{name}").write_bytes(content)
    print(f"{folder}: {len(seeds)} seeds")


write("request", REQUESTS)
write("outcome_list", LISTS)

"""Files and reads an Open311 GeoReport v2 request as a civic app would.

Reading goes through `georeport` (PyPI), a third-party GeoReport v2 client, in JSON and in
XML. That library only reads, so the request is filed with a plain form POST as the
specification describes. Prints one JSON object with what the library saw.

usage: open311_georeport.py BASE_URL API_KEY LAT LONG
"""

import json
import sys

import requests
from georeport import GeoReport

base, api_key, lat, long = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

filed = requests.post(
    f"{base}/requests.json",
    data={
        "api_key": api_key,
        "service_code": "event:0102",
        "lat": lat,
        "long": long,
        "address_string": "Gate of the market",
        "description": "Garbage piled by the gate",
        "first_name": "Wang",
        "last_name": "Wu",
        "phone": "13900001111",
        "email": "wang.wu@example.org",
    },
    timeout=30,
)
filed.raise_for_status()
request_id = filed.json()[0]["service_request_id"]

seen = {"filed": request_id}
for fmt in ("json", "xml"):
    client = GeoReport(base, output_format=fmt)
    services = client.get_service_list()
    definition = client.get_service_definition("event:0102")
    listed = client.get_service_requests(status="open")
    # xmltodict gives one element as a dict, several as a list.
    if isinstance(listed, dict):
        listed = [listed]
    one = client.get_service_request(request_id)
    seen[fmt] = {
        "services": len(services),
        "has_0102": any(s["service_code"] == "event:0102" for s in services),
        "definition_code": definition["service_code"],
        "listed": [r["service_request_id"] for r in listed],
        "status": one["status"],
        "service_code": one["service_code"],
        "lat": float(one["lat"]),
        "text": json.dumps([services, definition, listed, one], ensure_ascii=False),
    }
print(json.dumps(seen, ensure_ascii=False))

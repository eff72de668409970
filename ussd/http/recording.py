"""Recording a handset's session as a scenario file (docs/scenarios.md) over the phones API.

`POST /api/v1/phones/{msisdn}/record` starts a recording of that number; `DELETE .../record`
stops it and answers with the scenario YAML written by `ussd.recording` (one implementation of
the file format for the web phone, the terminal phone and in-process code).

While a number is recorded, its dials, replies and releases through the phones API are handed
to the Recorder with the screens they produced (a middleware sees the request and the answer);
SMS and reply timeouts come from the engine's events for that number. A reply to a password
prompt is recorded as a `${password}` placeholder, never as typed (ussd/recording.py). The
subscriber's data is taken when the recording starts, so the replay world starts where the
handset did. Dials made
on another transport (an SMPP harness on the same number) are not recorded: their text never
reaches this layer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ussd import log
from ussd.engine import UnknownSubscriber
from ussd.http.errors import ApiError, Handler, json_body, json_response
from ussd.http.phones import GATEWAY
from ussd.msisdn import InvalidMsisdn
from ussd.recording import Recorder, is_paging

_log = log.get("http.recording")

MAX_NAME = 200
_PHONE = "/api/v1/phones/{msisdn}/"
_ACTIONS = {_PHONE + "dial": "dial", _PHONE + "reply": "reply", _PHONE + "release": "release"}


@dataclass(slots=True)
class Recording:
    """One number's recording: the Recorder and how to stop it hearing the engine."""

    recorder: Recorder
    detach: Callable[[], None]


RECORDINGS: web.AppKey[dict[str, Recording]] = web.AppKey("recordings")


def _msisdn(request: web.Request) -> str | None:
    try:
        return request.app[GATEWAY].engine.normalise(request.match_info["msisdn"])
    except InvalidMsisdn:
        return None


def _prompt(request: web.Request, msisdn: str) -> tuple[bool, int, int] | None:
    """(secret, page, pages) of the screen the reply answers, read before the reply runs."""
    dialog = request.app[GATEWAY].engine.dialog(msisdn)
    if dialog is None:
        return None
    return dialog.secret, dialog.page, len(dialog.pages)


@web.middleware
async def record_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hand a recorded number's dials, replies and releases to its Recorder."""
    recordings = request.app[RECORDINGS]
    if not recordings:
        return await handler(request)
    resource = request.match_info.route.resource
    action = _ACTIONS.get(resource.canonical) if resource is not None else None
    msisdn = _msisdn(request) if action is not None else None
    recording = recordings.get(msisdn) if msisdn is not None else None
    # Whether the reply answers a password prompt is the dialog's state before it runs
    # (Continue.secret): the recording writes a placeholder instead of the password.
    prompt = _prompt(request, msisdn) if recording and msisdn and action == "reply" else None
    response = await handler(request)
    if response.status != 200 or not isinstance(response, web.Response):
        return response
    if recording is None or msisdn is None or not isinstance(response.body, bytes):
        return response
    answer: dict[str, Any] = json.loads(response.body)
    rec = recording.recorder
    if action == "release":
        if answer.get("released"):
            rec.release(msisdn)
        return response
    # The handler has read the body already; aiohttp keeps it, so this does not wait.
    text = str((await json_body(request))["text"])
    if action == "dial":
        rec.dial(msisdn, text, answer)
    else:
        secret = prompt is not None and prompt[0] and not is_paging(text, prompt[1], prompt[2])
        rec.reply(msisdn, text, answer, secret=secret)
    return response


async def start(request: web.Request) -> web.Response:
    """`POST .../record {"name"?}`: start recording (201), or 200 when already recording."""
    gw = request.app[GATEWAY]
    data = await json_body(request)
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= MAX_NAME):
        raise ApiError(400, "bad_field", f"field 'name' must be 1-{MAX_NAME} characters")
    msisdn = _msisdn(request)
    if msisdn is None:
        raise ApiError(400, "bad_msisdn", f"not a phone number: {request.match_info['msisdn']}")
    try:
        gw.engine.subscriber(msisdn)  # first contact provisions, as a dial would
    except UnknownSubscriber as exc:
        raise ApiError(404, "unknown_msisdn", f"no subscriber {msisdn}") from exc
    recordings = request.app[RECORDINGS]
    if msisdn in recordings:
        return _state(msisdn, recordings[msisdn], 200)
    sub = gw.find_subscriber(msisdn)
    rec = Recorder(name or f"Recorded on {msisdn}")
    # The data of the moment recording starts: a replay world starts where the handset did.
    rec.subscriber(sub.public() if sub is not None else msisdn)
    recordings[msisdn] = Recording(rec, rec.attach(gw, msisdn))
    _log.info("recording_started", msisdn=msisdn)
    return _state(msisdn, recordings[msisdn], 201)


def _state(msisdn: str, recording: Recording, status: int) -> web.Response:
    body = {
        "msisdn": msisdn,
        "recording": True,
        "name": recording.recorder.name,
        "steps": len(recording.recorder.steps),
    }
    return json_response(body, status=status)


async def stop(request: web.Request) -> web.Response:
    """`DELETE .../record`: stop and answer with the scenario YAML (404 when not recording)."""
    msisdn = _msisdn(request)
    if msisdn is None:
        raise ApiError(400, "bad_msisdn", f"not a phone number: {request.match_info['msisdn']}")
    recording = request.app[RECORDINGS].pop(msisdn, None)
    if recording is None:
        raise ApiError(404, "not_recording", f"{msisdn} is not being recorded")
    recording.detach()
    _log.info("recording_stopped", msisdn=msisdn, steps=len(recording.recorder.steps))
    return web.Response(
        text=recording.recorder.dumps(),
        content_type="text/yaml",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{msisdn}.yaml"'},
    )


def setup(app: web.Application) -> None:
    """Add the record routes; the app must also use `record_middleware`."""
    app[RECORDINGS] = {}
    app.router.add_post(_PHONE + "record", start)
    app.router.add_delete(_PHONE + "record", stop)
    app.on_cleanup.append(_detach_all)


async def _detach_all(app: web.Application) -> None:
    for recording in app[RECORDINGS].values():
        recording.detach()
    app[RECORDINGS].clear()

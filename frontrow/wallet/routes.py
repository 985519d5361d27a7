"""HTTP routes of money: wallet, charges, receipts (user token), payments (queue token)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from frontrow.errors import Problem
from frontrow.http import JSONResponse, queue_claims_of, read_json, store_of, user_id_of
from frontrow.metrics import PAYMENTS
from frontrow.observe import CONCERT
from frontrow.wallet import ledger, payments, receipts


async def get_wallet(request: Request) -> Response:
    user_id = user_id_of(request)
    balance = await ledger.balance(store_of(request), user_id)
    return JSONResponse({"user_id": user_id, "balance": balance})


async def charge(request: Request) -> Response:
    store = store_of(request)
    user_id = user_id_of(request)
    key = ledger.idempotency_key(request.headers.get("idempotency-key"))
    amount = ledger.parse_amount(await read_json(request), store.settings.max_charge)
    return JSONResponse(await ledger.charge(store, user_id, amount, key))


async def list_receipts(request: Request) -> Response:
    user_id = user_id_of(request)
    return JSONResponse({"receipts": await receipts.list_receipts(store_of(request), user_id)})


async def get_receipt(request: Request) -> Response:
    user_id = user_id_of(request)
    receipt_id = request.path_params["receipt_id"]
    return JSONResponse(await receipts.get_receipt(store_of(request), user_id, receipt_id))


async def pay(request: Request) -> Response:
    store = store_of(request)
    claims = queue_claims_of(request)
    request.scope[CONCERT] = claims.concert_id  # its metrics and log line are the concert's
    key = ledger.idempotency_key(request.headers.get("idempotency-key"))
    body = await read_json(request)
    hold_ids = payments.parse_hold_ids(body, store.settings.max_holds_per_user)
    concert = str(claims.concert_id)
    try:
        receipt, replayed = await payments.pay(store, claims, hold_ids, key)
    except Problem as problem:
        PAYMENTS.labels(concert, problem.code.lower()).inc()
        raise
    PAYMENTS.labels(concert, "replayed" if replayed else "paid").inc()
    return JSONResponse(receipt, status_code=201)


routes = [
    Route("/wallet", get_wallet, methods=["GET"]),
    Route("/wallet/charge", charge, methods=["POST"]),
    Route("/receipts", list_receipts, methods=["GET"]),
    Route("/receipts/{receipt_id:slug}", get_receipt, methods=["GET"]),
    Route("/payments", pay, methods=["POST"]),
]

#!/usr/bin/env bash
# Fills the event store of $DATABASE_URL (migrated) with N events, straight with SQL, for the
# benchmarks of the readers of the store (replay, relay, rebuild):
#
#   bench/fill-events.sh N
#
# INSERT ... SELECT generate_series, in transactions of 100,000 events: realistic envelopes and
# payloads of five kinds (OrderPlaced, StockReserved, CartItemAdded, PaymentInitiated, OrderPaid),
# about 200 bytes of JSON each, over 20,000 streams per kind. This is not the command path (that
# is measured by bench/run.sh). Ends with VACUUM ANALYZE.
set -euo pipefail
EVENTS=${1:?usage: bench/fill-events.sh N}
: "${DATABASE_URL:?set DATABASE_URL}"
BATCH=100000
for ((from = 0; from < EVENTS; from += BATCH)); do
  to=$((from + BATCH < EVENTS ? from + BATCH : EVENTS))
  # Event i belongs to stream (kind i % 5, number (i / 5) % 20000) at version i / 100000 + 1:
  # unique per stream, as the store requires. Ids are md5-derived UUIDs; one actor in three null.
  psql "$DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, occurred_at,
                    correlation_id, causation_id, actor, data)
SELECT gen_random_uuid(),
       k.category || '-' || md5(k.kind || '-' || (g.i / 5) % 20000)::uuid,
       g.i / 100000 + 1,
       k.type,
       1,
       timestamptz '2026-01-01 00:00:00+00' + g.i * interval '37 milliseconds',
       md5('c' || g.i / 3)::uuid,
       md5('c' || g.i / 3)::uuid,
       CASE WHEN g.i % 3 = 0 THEN NULL ELSE md5('u' || g.i % 5000)::uuid END,
       CASE k.kind
         WHEN 0 THEN jsonb_build_object(
           'order_id', md5('0-' || (g.i / 5) % 20000)::uuid, 'order_number', 'SO-' || (100001 + g.i),
           'user_id', md5('u' || g.i % 5000)::uuid, 'currency', 'USD', 'total', 131998,
           'lines', jsonb_build_array(
             jsonb_build_object('product_id', md5('p' || g.i % 200)::uuid, 'name', 'Ultrabook 13',
                                'unit_price', 129999, 'quantity', 1, 'line_total', 129999),
             jsonb_build_object('product_id', md5('p' || (g.i + 1) % 200)::uuid,
                                'name', 'Wireless mouse', 'unit_price', 1999, 'quantity', 1,
                                'line_total', 1999)))
         WHEN 1 THEN jsonb_build_object(
           'product_id', md5('1-' || (g.i / 5) % 20000)::uuid, 'order_id', md5('o' || g.i)::uuid,
           'quantity', 1 + g.i % 3, 'stock_after', 1000 - g.i % 1000)
         WHEN 2 THEN jsonb_build_object(
           'user_id', md5('u' || g.i % 5000)::uuid, 'product_id', md5('p' || g.i % 200)::uuid,
           'name', 'Mechanical keyboard, "silent" switches', 'unit_price', 8999,
           'quantity', 1, 'line_quantity', 1 + g.i % 4)
         WHEN 3 THEN jsonb_build_object(
           'payment_id', md5('3-' || (g.i / 5) % 20000)::uuid, 'order_id', md5('o' || g.i)::uuid,
           'user_id', md5('u' || g.i % 5000)::uuid, 'provider', 'sandbox', 'currency', 'USD',
           'amount', 131998)
         ELSE jsonb_build_object(
           'order_id', md5('4-' || (g.i / 5) % 20000)::uuid, 'payment_id', md5('p' || g.i)::uuid,
           'amount', 131998)
       END
  FROM generate_series($from, $((to - 1))) AS g(i)
  JOIN (VALUES (0, 'order', 'OrderPlaced'), (1, 'product', 'StockReserved'),
               (2, 'cart', 'CartItemAdded'), (3, 'payment', 'PaymentInitiated'),
               (4, 'order', 'OrderPaid')) AS k(kind, category, type)
    ON k.kind = g.i % 5;
SQL
done
psql "$DATABASE_URL" -qAtX -c "VACUUM (ANALYZE) events" >/dev/null

"""The client SDK for services around slaclock: publish ticket events, read its outputs.

It imports `slaclock.schemas` and confluent-kafka only, never the processors:

- `TicketEventPublisher` (`slaclock.client.publisher`): validates each event with the
  same rules the worker applies, keys it by `ticket_id`, idempotent delivery;
- `OutputSubscriber`, `collect` (`slaclock.client.subscriber`): typed output events,
  read_committed;
- `with_logging` (`slaclock.client.librdkafka_log`): librdkafka's log through Python
  logging.
"""

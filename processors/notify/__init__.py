"""Notifications: routing, rendering and retry policy for `slaclock notify`.

The modules here are pure (no I/O, no wall clock): `config` validates the routing file,
`routing` picks targets for an output, `render` builds the HTTP request for a target,
`retry` decides what happens after an attempt, `status` keeps per-target counts. The faust
app in `processors.notify.app` is the thin adapter that reads Kafka and does the HTTP.
"""

"""Reports people read: figures from the engine's outputs, charts, HTML/CSV/JSON, what-if.

`outputs` reads a file or list of output events, `figures` computes the report's figures
(pure functions of the outputs and a period), `charts` draws them with matplotlib as SVG,
`render` writes HTML, CSV and JSON of the same figures, `whatif` compares two replays by
natural key.
"""

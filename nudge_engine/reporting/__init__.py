"""The HTML + JSON report: monitoring and experiment results, charts drawn server-side as inline SVG.

``document`` builds the JSON-ready data from a monitoring checkup; ``charts`` draws SVG; ``render``
writes ``report.html`` (Jinja2 template in ``templates/``, no script, no CDN) and ``report.json``;
``service`` runs a checkup and writes both.
"""

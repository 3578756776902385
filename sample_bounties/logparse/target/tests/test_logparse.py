"""Unit tests of the parser (the bounty's constraints.test_command runs them).

Run from target/: python3 -m unittest discover -s tests
"""

import unittest

import logparse

LINE = ('2026-03-14T12:00:01.123Z web-3 INFO 203.0.113.7 "GET /api/v1/items/42?page=2 HTTP/1.1" 200 5123 '
        '12.5ms "curl/8.5.0" req=1a2b3c user=u42')


class ParseLine(unittest.TestCase):
    def test_fields_of_a_plain_line(self):
        rec = logparse.parse_line(LINE)
        self.assertEqual(rec["ts"], "2026-03-14T12:00:01.123Z")
        self.assertEqual(rec["hour"], "2026-03-14T12")
        self.assertEqual((rec["host"], rec["level"], rec["client"]), ("web-3", "INFO", "203.0.113.7"))
        self.assertEqual(rec["path"], "/api/v1/items/:id")
        self.assertEqual((rec["status"], rec["bytes"], rec["ms"]), (200, 5123, 12.5))
        self.assertEqual(rec["user"], "u42")

    def test_seconds_dash_size_ipv6_and_escaped_agent(self):
        line = ('2026-03-14T23:59:59.999Z api-1 ERROR 2001:db8:1::2 "POST /static/app.0123abcd.js HTTP/2.0" 304 - '
                '1.25s "Bot \\"Crawler\\" \\\\ v2" user=u7 region=eu')
        rec = logparse.parse_line(line)
        self.assertEqual(rec["bytes"], 0)
        self.assertEqual(rec["ms"], 1250.0)
        self.assertEqual(rec["agent"], 'Bot "Crawler" \\ v2')
        self.assertEqual(rec["client"], "2001:db8:1::2")
        self.assertEqual(rec["path"], "/static/app.:hex.js")

    def test_hex_segments_and_short_words(self):
        self.assertEqual(logparse.path_template("/api/v1/orders/deadbeef00/items/7"), "/api/v1/orders/:hex/items/:id")
        self.assertEqual(logparse.path_template("/api/v1/cafe"), "/api/v1/cafe")  # hex but shorter than 8
        self.assertEqual(logparse.path_template("/"), "/")

    def test_malformed_lines(self):
        for bad in ["", "--- log rotated ---", "    at handler.get(views.py:12)", LINE[:60],
                    LINE.replace("INFO", "NOTICE"), LINE.replace('"curl/8.5.0"', '"curl/8.5.0')]:
            with self.subTest(bad=bad):
                self.assertIsNone(logparse.parse_line(bad))


class Analyze(unittest.TestCase):
    def test_report(self):
        lines = [LINE, "garbage", LINE.replace("12.5ms", "0.5s").replace("u42", "u43"),
                 LINE.replace("web-3", "web-1").replace(" 200 ", " 503 ")]
        report = logparse.analyze(lines)
        self.assertEqual(report["lines"], 4)
        self.assertEqual(report["malformed"], 1)
        self.assertEqual(report["status"], {"2xx": 2, "5xx": 1})
        self.assertEqual(report["hosts"], {"web-1": {"requests": 1, "bytes": 5123},
                                           "web-3": {"requests": 2, "bytes": 10246}})
        self.assertEqual(report["top_paths"], [["/api/v1/items/:id", 3, 500.0]])
        self.assertEqual(report["clients"], 1)
        self.assertEqual(report["users"], 2)
        self.assertEqual(report["slowest"], ["2026-03-14T12:00:01.123Z", "/api/v1/items/:id", 500.0])

    def test_every_tuning_option_gives_the_same_report(self):
        lines = [LINE, LINE.replace("203.0.113.7", "10.0.0.1").replace("42", "43")]
        baseline = logparse.analyze(lines)
        saved = {k: getattr(logparse, k) for k in ("TIMESTAMP_PARSER", "DISTINCT_WITH", "LINE_REGEX", "UNESCAPE")}
        try:
            logparse.TIMESTAMP_PARSER, logparse.DISTINCT_WITH = "slicing", "set"
            logparse.LINE_REGEX, logparse.UNESCAPE = "once", "replace"
            self.assertEqual(logparse.analyze(lines), baseline)
        finally:
            for k, v in saved.items():
                setattr(logparse, k, v)


if __name__ == "__main__":
    unittest.main()

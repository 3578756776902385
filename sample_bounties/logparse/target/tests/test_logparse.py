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

    def test_sessions_split_on_pauses_longer_than_five_minutes_per_client(self):
        at = lambda t, ip="203.0.113.7": LINE.replace("12:00:01.123", t).replace("203.0.113.7", ip)
        lines = [at("12:00:00.000"), at("12:05:00.000"), at("12:10:00.001"), at("12:01:00.000", "10.0.0.9")]
        self.assertEqual(logparse.analyze(lines)["sessions"], 3)  # 5:00.000 is no pause; 5:00.001 is
        crossing = [at("23:58:00.000"), LINE.replace("2026-03-14T12:00:01.123", "2026-03-15T00:02:00.000")]
        self.assertEqual(logparse.analyze(crossing)["sessions"], 1)

    def test_every_tuning_option_gives_the_same_report(self):
        lines = [LINE, LINE.replace("203.0.113.7", "10.0.0.1").replace("42", "43"),
                 LINE.replace("12:00:01.123", "12:09:00.000"), '2026-03-14T12:00:01.123Z web-3 INFO 203.0.113.7 '
                 '"GET / HTTP/1.1" 200 - 1s "Bot \\"x\\"" user=u1']
        baseline = logparse.analyze(lines)
        names = ("TIMESTAMP_PARSER", "DISTINCT_WITH", "LINE_REGEX", "UNESCAPE", "SESSIONS_BY")
        saved = {k: getattr(logparse, k) for k in names}
        try:
            logparse.TIMESTAMP_PARSER, logparse.DISTINCT_WITH = "slicing", "set"
            logparse.LINE_REGEX, logparse.UNESCAPE, logparse.SESSIONS_BY = "once", "replace", "group"
            self.assertEqual(logparse.analyze(lines), baseline)
        finally:
            for k, v in saved.items():
                setattr(logparse, k, v)


if __name__ == "__main__":
    unittest.main()

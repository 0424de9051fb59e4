"""A failed delivery's reason is stored on the channel and in the audit log
(readable with a read-scope token), while the channel's URL is sealed: the
reason must not carry the URL's credentials, whatever a plugin put in it."""

from __future__ import annotations

from scriptbox.notify.apprise_url import redact


def test_a_failure_reason_quoting_the_url_keeps_none_of_its_secrets() -> None:
    url = "json://alice:Pa55word-x@hooks.example:8443/services/T0K3N-in-the-path/more?token=QUERYSECRET99&v=1"
    reason = ("ConnectionError: HTTPSConnectionPool(host='hooks.example', port=8443): Max retries exceeded "
              "with url: /services/T0K3N-in-the-path/more?token=QUERYSECRET99&v=1 (while sending to "
              f"{url}; user alice:Pa55word-x)")
    cleaned = redact(reason, url)
    for secret in ("Pa55word-x", "T0K3N-in-the-path", "QUERYSECRET99"):
        assert secret not in cleaned, cleaned
    # What helps an operator stays: the kind of error, the host and the port.
    assert cleaned.startswith("ConnectionError: HTTPSConnectionPool(host='hooks.example', port=8443)")


def test_a_reason_without_the_url_is_left_as_it_is() -> None:
    reason = "A Connection error occurred sending JSON notification to 127.0.0.1."
    assert redact(reason, "json://127.0.0.1:9/hooks/SECRETTOKEN123") == reason

"""Content-Security-Policy on the hosted pages, checked in Chromium: no page needs what the policy refuses."""

import time

import pyotp
import pytest
import time_machine
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from playwright.sync_api import expect

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from accounts.tests.test_pages_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPORT_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) =>
  window.reportCspViolation(`${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture
def csp_page(browser_page):
    """browser_page (which fails on any console error) that also records each CSP violation event."""
    browser_page.csp_violations = []
    browser_page.expose_function("reportCspViolation", lambda text: browser_page.csp_violations.append(text))
    browser_page.add_init_script(REPORT_VIOLATIONS)
    return browser_page


def visit(page, path):
    response = page.goto(path)
    assert response.status == 200, path
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
    page.wait_for_load_state("load")


def test_hosted_pages_load_under_the_csp_without_a_violation(csp_page):
    page = csp_page
    staff = UserFactory(email="csp@example.com", is_staff=True)
    EmailAddress.objects.create(user=staff, email=staff.email, primary=True, verified=True)

    for path in [
        "/",
        "/account/login/",
        "/account/signup/",
        "/account/password/reset/",
    ]:
        visit(page, path)
    visit(page, "/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("ChatFocus API")

    log_in(page, staff.email)
    expect(page).to_have_url("/account/")
    for path in [
        "/account/",
        "/account/email/",
        "/account/password/change/",
        "/account/connections/",
        "/account/sessions/",
        "/account/billing/",
        "/account/2fa/",
    ]:
        visit(page, path)

    # Enrolling a second factor: reauthentication, the QR code page, then the recovery codes page.
    page.goto("/account/2fa/totp/activate/")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url("/account/2fa/totp/activate/")
    expect(page.locator("img[src^='data:image/svg+xml']")).to_be_visible()
    secret = page.locator("#authenticator_secret").input_value()
    # From the start of a 30 s TOTP period, so the code typed is still current when the server checks it.
    period_start = (int(time.time()) // 30 + 1) * 30
    with time_machine.travel(period_start + 1, tick=True):
        page.get_by_label("Authenticator code").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Activate").click()
        page.wait_for_url("**/2fa/**")
    assert Authenticator.objects.filter(user=staff, type=Authenticator.Type.TOTP).exists()
    visit(page, "/account/2fa/recovery-codes/")
    visit(page, "/account/2fa/")

    # The next login stops at the second factor's page. A later period: a code works once.
    page.context.clear_cookies()
    log_in(page, staff.email)
    expect(page).to_have_url("/account/2fa/authenticate/")
    with time_machine.travel(period_start + 31, tick=True):
        page.locator("input[name=code]").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Sign In").click()
        expect(page).to_have_url("/account/")

    assert page.csp_violations == []

    # The check itself works: an inline script is refused, reported, and never runs.
    with page.expect_console_message(lambda message: "Content Security Policy" in message.text):
        page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.inlineRan = 1';"
            " document.body.append(s); }"
        )
    assert page.evaluate("() => window.inlineRan") is None
    page.console_errors.clear()

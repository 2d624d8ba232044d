"""The hosted account pages, driven through headless Chromium against the live server."""

import itertools
import json
import re
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import expect

from accounts.models import User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NEW_PASSWORD = "a-much-longer-passphrase-42"

# Every page: a <title>, a label for every input, a CSRF token in every POST form, nothing from a CDN.
PAGE_AUDIT = """() => {
  const unlabeled = [...document.querySelectorAll('input, select, textarea')]
    .filter(el => !['hidden', 'submit', 'button'].includes(el.type))
    .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
    .map(el => el.name || el.id);
  const postFormsWithoutCsrf = [...document.querySelectorAll('form')]
    .filter(f => f.method.toLowerCase() === 'post' && !f.querySelector('input[name=csrfmiddlewaretoken]'))
    .map(f => f.action);
  const external = performance.getEntriesByType('resource').map(e => e.name)
    .filter(url => !url.startsWith(location.origin) && !url.startsWith('data:'));
  return {title: document.title.trim(), unlabeled, postFormsWithoutCsrf, external};
}"""


@pytest.fixture(autouse=True)
def _plain_http_links(settings):
    # Links in emails say https in production; the live test server speaks plain http.
    settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http"


@pytest.fixture
def shot(request):
    """Audit the current page and save a screenshot to test-artifacts/ for reviewers."""
    counter = itertools.count(1)
    ARTIFACTS.mkdir(exist_ok=True)

    def take(page, name):
        page.wait_for_load_state("load")
        audit = page.evaluate(PAGE_AUDIT)
        assert audit["title"].endswith("· ChatFocus") and len(audit["title"]) > len("· ChatFocus"), audit
        assert audit["unlabeled"] == [], f"inputs without a label on {page.url}: {audit['unlabeled']}"
        assert audit["postFormsWithoutCsrf"] == [], f"POST forms without CSRF on {page.url}"
        assert audit["external"] == [], f"resources from other origins on {page.url}: {audit['external']}"
        page.screenshot(path=ARTIFACTS / f"{request.node.name}-{next(counter):02d}-{name}.png", full_page=True)

    return take


def link_from_last_email(pattern):
    body = mail.outbox[-1].body
    match = re.search(pattern, body)
    assert match, body
    return match.group(0)


def log_in(page, email, password=DEFAULT_PASSWORD):
    page.goto("/account/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_landing_links_to_signup_login_and_api_docs(browser_page, shot):
    page = browser_page
    page.goto("/")
    expect(page.get_by_role("heading", name="ChatFocus", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="API documentation")).to_have_attribute("href", "/api/docs/")
    shot(page, "landing")
    page.get_by_role("link", name="Create an account").click()
    expect(page).to_have_url(re.compile(r"/account/signup/$"))
    page.goto("/")
    page.get_by_role("link", name="Log in").first.click()
    expect(page).to_have_url(re.compile(r"/account/login/$"))


def test_unknown_page_shows_friendly_404(browser_page, shot):
    response = browser_page.goto("/no-such-page/")
    assert response.status == 404
    expect(browser_page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(browser_page.get_by_role("link", name="Back to the ChatFocus home page")).to_be_visible()
    shot(browser_page, "404")
    assert browser_page.console_errors == [
        "Failed to load resource: the server responded with a status of 404 (Not Found)"
    ]
    browser_page.console_errors.clear()


def test_signup_form_shows_field_errors(browser_page, shot):
    UserFactory(email="taken@example.com")
    page = browser_page
    page.goto("/account/signup/")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Password (again)").fill("different")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#id_email_error")).to_contain_text("Enter a valid email address.")
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    shot(page, "signup-errors")

    page.get_by_label("Email").fill("taken@example.com")
    page.get_by_label("Password", exact=True).fill("password")
    page.get_by_label("Password (again)").fill("password")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#id_password1_error")).to_contain_text("This password is too common.")
    shot(page, "signup-weak-password")


def test_login_form_shows_errors_for_bad_credentials(browser_page, shot):
    UserFactory(email="ada@example.com")
    page = browser_page
    page.goto("/account/login/")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#id_login_error")).to_contain_text("This field is required.")
    expect(page.locator("#id_password_error")).to_contain_text("This field is required.")
    shot(page, "login-empty")
    log_in(page, "ada@example.com", "wrong-password-123")
    expect(page.get_by_role("alert")).to_contain_text("not correct")
    shot(page, "login-wrong-password")


def test_password_reset_from_the_email_link(browser_page, shot, mailoutbox):
    UserFactory(email="grace@example.com")
    page = browser_page
    page.goto("/account/password/reset/")
    page.get_by_role("button", name="Reset my password").click()
    expect(page.locator("#id_email_error")).to_contain_text("This field is required.")
    shot(page, "reset-errors")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_role("button", name="Reset my password").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    shot(page, "reset-done")

    page.goto(link_from_last_email(r"https?://\S+/account/password/reset/key/\S+/"))
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New Password (again)").fill("something-else-entirely")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#id_password2_error")).to_contain_text("same password")
    shot(page, "reset-key-errors")
    page.get_by_label("New Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New Password (again)").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password is now changed.")).to_be_visible()
    shot(page, "reset-complete")

    log_in(page, "grace@example.com", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()


def test_session_cookie_is_httponly_lax_and_secure(browser_page):
    UserFactory(email="cookie@example.com")
    log_in(browser_page, "cookie@example.com")
    expect(browser_page.get_by_role("heading", name="Your account")).to_be_visible()
    cookie = next(c for c in browser_page.context.cookies() if c["name"] == "sessionid")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is True


def test_account_journey_from_signup_to_deletion(browser_page, shot, mailoutbox):
    page = browser_page
    email = "ada@example.com"

    page.goto("/account/signup/")
    shot(page, "signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password (again)").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(f"Confirmation email sent to {email}")
    shot(page, "signed-up")
    confirm_link = link_from_last_email(r"https?://\S+/account/confirm-email/\S+/")

    page.get_by_role("link", name="Log out").click()
    expect(page.get_by_role("heading", name="Log out")).to_be_visible()
    shot(page, "logout")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_contain_text("You have signed out.")

    page.goto(confirm_link)
    expect(page.get_by_role("heading", name="Confirm your email address")).to_be_visible()
    expect(page.get_by_text(email).first).to_be_visible()
    shot(page, "confirm-email")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_contain_text(f"You have confirmed {email}.")

    log_in(page, email, NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    shot(page, "profile")

    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Time zone").select_option("Europe/London")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status")).to_contain_text("Your profile was saved.")
    expect(page.get_by_label("Name")).to_have_value("Ada Lovelace")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/London")
    page.get_by_label("Share anonymous usage analytics").check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_contain_text("Your preferences were saved.")
    expect(page.get_by_label("Share anonymous usage analytics")).to_be_checked()
    shot(page, "profile-saved")

    # The extension logs in through the API: that session is listed on the page and can be revoked.
    login = page.request.post(
        "/api/auth/login", data={"email": email, "password": NEW_PASSWORD, "device_name": "Work laptop"}
    )
    assert login.status == 200, login.text()
    refresh = login.json()["refresh"]
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Sessions").click()
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Work laptop")
    expect(row).to_be_visible()
    shot(page, "sessions")
    row.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("The session was signed out.")
    expect(page.get_by_role("row").filter(has_text="Work laptop")).to_have_count(0)
    shot(page, "session-revoked")
    assert page.request.post("/api/auth/refresh", data={"refresh": refresh}).status == 401

    page.get_by_role("navigation", name="Account").get_by_role("link", name="Export").click()
    expect(page.get_by_role("heading", name="Export your data")).to_be_visible()
    shot(page, "export")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download my data (JSON)").click()
    download = download_info.value
    assert re.fullmatch(r"chatfocus-export-\d{4}-\d{2}-\d{2}\.json", download.suggested_filename)
    exported = json.loads(Path(download.path()).read_text())
    assert email in json.dumps(exported)
    assert "Ada Lovelace" in json.dumps(exported)

    page.get_by_role("navigation", name="Account").get_by_role("link", name="Delete account").click()
    expect(page.get_by_role("heading", name="Delete your account")).to_be_visible()
    expect(page.get_by_text("there is no subscription to cancel")).to_be_visible()
    page.get_by_label("Your password").fill("not-my-password")
    page.get_by_label("I understand that this cannot be undone").check()
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator("#id_password_error")).to_be_visible()
    shot(page, "delete-wrong-password")
    page.get_by_label("Your password").fill(NEW_PASSWORD)
    page.get_by_label("I understand that this cannot be undone").check()
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("status")).to_contain_text("Your account and its data were deleted.")
    shot(page, "deleted")
    assert not User.objects.filter(email=email).exists()

    log_in(page, email, NEW_PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text("not correct")
    shot(page, "login-after-delete")


def test_account_forms_show_field_errors(browser_page, shot):
    UserFactory(email="lin@example.com")
    page = browser_page
    log_in(page, "lin@example.com")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()

    page.get_by_label("Email", exact=True).fill("not-an-email")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#id_email_error")).to_contain_text("Enter a valid email address.")
    shot(page, "profile-errors")

    page.goto("/account/password/change/")
    page.get_by_label("Current Password").fill("wrong-one-entirely")
    page.get_by_label("New Password", exact=True).fill("123")
    page.get_by_label("New Password (again)").fill("123")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#id_oldpassword_error")).to_contain_text("Please type your current password.")
    expect(page.locator("#id_password1_error")).to_contain_text("too short")
    shot(page, "password-change-errors")

    page.goto("/account/delete/")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator("#id_password_error")).to_contain_text("This field is required.")
    expect(page.locator("#id_confirm_error")).to_contain_text("This field is required.")
    shot(page, "delete-errors")


@pytest.fixture
def github_login(settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        **settings.SOCIALACCOUNT_PROVIDERS,
        "github": {
            **settings.SOCIALACCOUNT_PROVIDERS["github"],
            "APPS": [{"client_id": "gh-id", "secret": "gh-secret"}],
        },
    }


def connect_github(user):
    from allauth.socialaccount.models import SocialAccount

    return SocialAccount.objects.create(user=user, provider="github", uid="4242", extra_data={"login": "octo"})


def test_connections_refuses_to_unlink_the_last_login_method(browser_page, shot, github_login, client, live_server):
    user = UserFactory(email="octo@example.com")
    user.set_unusable_password()
    user.save()
    connect_github(user)
    # An OAuth-only user cannot log in with a password: hand the browser a logged-in session instead.
    client.force_login(user)
    page = browser_page
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )

    page.goto("/account/connections/")
    expect(page.get_by_role("heading", name="Connected accounts")).to_be_visible()
    expect(page.get_by_role("link", name="GitHub")).to_be_visible()
    page.get_by_role("button", name="Disconnect").click()
    expect(page.locator("#id_account_error")).to_contain_text("This field is required.")
    page.get_by_label("GitHub: octo").check()
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("alert")).to_contain_text("Your account has no password set up.")
    expect(page.get_by_label("GitHub: octo")).to_be_visible()
    shot(page, "cannot-unlink-last")


def test_connections_unlinks_a_provider_when_a_password_remains(browser_page, shot, github_login):
    user = UserFactory(email="cat@example.com")
    connect_github(user)
    page = browser_page
    log_in(page, "cat@example.com")
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Connections").click()
    page.get_by_label("GitHub: octo").check()
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("status")).to_contain_text("The third-party account has been disconnected.")
    expect(page.get_by_text("No Google or GitHub account is connected.")).to_be_visible()
    shot(page, "unlinked")


def test_billing_page_shows_the_tier_and_explains_the_disabled_upgrade(browser_page, shot, settings):
    settings.STRIPE_SECRET_KEY = ""
    UserFactory(email="free@example.com")
    page = browser_page
    log_in(page, "free@example.com")
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Plan & billing").click()
    expect(page.get_by_role("heading", name="Your plan: Free")).to_be_visible()
    expect(page.get_by_text("256.0 KB")).to_be_visible()
    expect(page.get_by_role("button", name="Upgrade to Pro")).to_be_disabled()
    expect(page.get_by_text("payments are not set up")).to_be_visible()
    shot(page, "billing-free")


def test_login_works_with_the_keyboard_alone(browser_page, shot):
    UserFactory(email="keys@example.com")
    page = browser_page
    page.goto("/account/login/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("Email").focus()
    page.keyboard.type("keys@example.com")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(DEFAULT_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    shot(page, "logged-in-by-keyboard")


def test_login_page_offers_configured_providers(browser_page, shot, github_login):
    page = browser_page
    page.goto("/account/login/")
    github = page.get_by_role("link", name="GitHub")
    expect(github).to_have_attribute("href", "/account/github/login/?process=login")
    expect(page.get_by_role("link", name="Google")).to_have_count(0)
    shot(page, "login-with-providers")


def test_preferences_save_the_analytics_opt_in(browser_page, shot):
    from accounts.services import get_analytics_opt_in

    user = UserFactory(email="prefs@example.com")
    page = browser_page
    log_in(page, "prefs@example.com")
    expect(page.get_by_label("Share anonymous usage analytics")).not_to_be_checked()
    page.get_by_label("Share anonymous usage analytics").check()
    page.get_by_label("Product update emails").uncheck()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_contain_text("Your preferences were saved.")
    expect(page.get_by_label("Share anonymous usage analytics")).to_be_checked()
    expect(page.get_by_label("Product update emails")).not_to_be_checked()
    shot(page, "preferences-saved")
    assert get_analytics_opt_in(user_id=user.id) is True


def test_profile_email_change_waits_for_confirmation(browser_page, shot, mailoutbox):
    UserFactory(email="other@example.com")
    UserFactory(email="mover@example.com")
    page = browser_page
    log_in(page, "mover@example.com")
    page.get_by_label("Current password").fill(DEFAULT_PASSWORD)
    page.get_by_label("Email", exact=True).fill("other@example.com")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#id_email_error")).to_contain_text("already used by another account")
    shot(page, "email-taken")
    page.get_by_label("Email", exact=True).fill("moved@example.com")
    page.get_by_label("Current password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status")).to_contain_text("We sent a confirmation link to moved@example.com.")
    expect(page.get_by_label("Email", exact=True)).to_have_value("mover@example.com")
    assert mailoutbox[-1].to == ["moved@example.com"]
    shot(page, "email-change-requested")


def test_billing_upgrade_redirects_to_stripe_checkout(browser_page, shot, stripe_prices, stripe_fake):
    user = UserFactory(email="upgrader@example.com")
    page = browser_page
    # The fake's Checkout URL is not reachable offline: answer it in the browser instead.
    page.route(
        "https://checkout.stripe.test/**",
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>Stripe Checkout</title><h1>Pay</h1>"
        ),
    )
    log_in(page, "upgrader@example.com")
    page.goto("/account/billing/")
    expect(page.get_by_role("heading", name="Your plan: Free")).to_be_visible()
    shot(page, "billing-configured")
    page.get_by_role("button", name="Upgrade to Pro").first.click()
    page.wait_for_url("https://checkout.stripe.test/**")
    expect(page.get_by_role("heading", name="Pay")).to_be_visible()
    sessions = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert len(sessions) == 1
    assert sessions[0].params["client_reference_id"] == str(user.id)
    assert sessions[0].idempotency_key

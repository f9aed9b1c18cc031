"""The one taxonomy of failure categories (a contract: verdict.json and Allure categories use the codes)."""

from enum import StrEnum


class Category(StrEnum):
    INFRA_UNREACHABLE = "infra.unreachable"  # no HTTP response: DNS, refused, reset, TLS
    INFRA_TIMEOUT = "infra.timeout"  # no complete response within the deadline
    INFRA_GATEWAY = "infra.gateway"  # 502/503/504 whose body is not the service's own JSON
    INFRA_STARTING = "infra.starting"  # the service's own JSON 503: startup in progress or failed
    INFRA_DEPENDENCY = "infra.dependency"  # the service says a dependency (database, cache) is down
    INFRA_WS = "infra.ws"  # WS upgrade refused with 5xx, or closed 1006/1011/1012/1013/1014
    PRODUCT_CONTRACT = "product.contract"  # 2xx with wrong type/shape, or the wrong service answering
    PRODUCT_AUTH = "product.auth"  # login rejected, valid token refused, invalid token accepted
    PRODUCT_HTTP = "product.http"  # an unexpected 4xx, or a 500
    PRODUCT_GOLDEN_PATH = "product.golden_path"  # chat events missing/out of order/error/empty/late
    PRODUCT_SLO = "product.slo"  # a success-rate or latency threshold missed

    @property
    def is_infra(self) -> bool:
        return self.value.startswith("infra.")

    @property
    def allure_status(self) -> str:
        """Infrastructure ends as Allure `broken`, product defects as `failed`."""
        return "broken" if self.is_infra else "failed"


DESCRIPTIONS: dict[Category, str] = {
    Category.INFRA_UNREACHABLE: "Infrastructure: unreachable (no HTTP response)",
    Category.INFRA_TIMEOUT: "Infrastructure: timeout (no complete response in time)",
    Category.INFRA_GATEWAY: "Infrastructure: gateway error page (502/503/504, not the service's JSON)",
    Category.INFRA_STARTING: "Infrastructure: service starting or startup failed",
    Category.INFRA_DEPENDENCY: "Infrastructure: dependency down (database, cache)",
    Category.INFRA_WS: "Infrastructure: WebSocket refused or dropped",
    Category.PRODUCT_CONTRACT: "Product: contract violation (type, shape, identity)",
    Category.PRODUCT_AUTH: "Product: authentication defect",
    Category.PRODUCT_HTTP: "Product: unexpected HTTP status",
    Category.PRODUCT_GOLDEN_PATH: "Product: golden path (chat events, AI answer)",
    Category.PRODUCT_SLO: "Product: SLO missed",
}

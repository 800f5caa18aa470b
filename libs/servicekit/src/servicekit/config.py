"""What every service's settings share: a `PlatformSettings` base (pydantic-settings) holding the
platform-wide fields and the deployment checks (servicekit.settings), so a service's `Settings`
subclasses it with its env prefix and adds only its own fields:

    class Settings(PlatformSettings):
        model_config = SettingsConfigDict(env_prefix="REGISTRY_SERVICE_")
        database_url: PostgresUrl = "postgresql://registry_service:registry_service_dev@..."
        db_password: SecretStr = SecretStr("registry_service_dev")
        ...its own fields

Platform-wide values keep their shared names (`FTD_ENV`, `FTD_AMQP_URL`, `FTD_JWT_SECRET`...);
a field without a shared name is `<PREFIX><FIELD>` (`DATA_SERVICE_DB_POOL_SIZE`). With
`populate_by_name`, a field with a shared name is also read as `<PREFIX><FIELD>` when the shared
one is unset (`DATA_SERVICE_ENVIRONMENT`, `REGISTRY_SERVICE_ACCESS_LOG`...), and tests pass
values by field name. Inputs never appear in a validation error (`hide_input_in_errors`): a
refused setting may be a secret.
"""

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.routing import BrokerNames
from messaging.broker import broker_urls
from servicekit.auth import JwtVerifier
from servicekit.settings import Secret, check_deployment, role_credentials

Environment = Literal["development", "production", "test"]
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


def shared(name: str) -> AliasChoices:
    """The platform-wide environment variable a field is read from (its service-prefixed name
    still works, see the module docstring)."""
    return AliasChoices(name)


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def _postgres_url(value: str) -> str:
    if _scheme(value) not in _POSTGRES_SCHEMES:
        raise ValueError("must be a PostgreSQL URL: postgresql://user:password@host:port/database")
    return value


def _amqp_url(value: SecretStr) -> SecretStr:
    broker_urls(value.get_secret_value())  # raises a ValueError that never repeats the value
    return value


# DSNs stay strings (every driver takes them so) but only a PostgreSQL or an AMQP URL passes; a
# broker URL may be a cluster's, several comma-separated (messaging.broker connects with failover).
PostgresUrl = Annotated[str, AfterValidator(_postgres_url)]
AmqpUrl = Annotated[SecretStr, AfterValidator(_amqp_url)]


class DatabaseSettings(BaseSettings):
    """What setting up the service's database needs (`db-init`, `migrate`): no token secrets.
    A service gives `database_url` and `db_password` their defaults (its development role)."""

    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    environment: Environment = Field(default="development", validation_alias=shared("FTD_ENV"))
    database_url: PostgresUrl
    db_password: SecretStr
    admin_dsn: PostgresUrl = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=shared("FTD_ADMIN_DSN"),
    )
    # `make dev` and `make migrate` set it per checkout (finetune_<hash of the path>), so two
    # clones on one machine never share a database.
    database_name: str = Field(default="finetune", validation_alias=shared("FTD_DATABASE_NAME"))

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable of a field without a shared name (`DATA_SERVICE_DB_PASSWORD`)."""
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @model_validator(mode="after")
    def _database_passwords(self) -> Self:
        credentials = role_credentials(
            self,
            {self.env_name(f): f for f in ("database_url", "db_password")},
        )
        check_deployment(
            environment=self.environment,
            secrets={},
            databases={**credentials, "FTD_ADMIN_DSN": self.admin_dsn},
        )
        return self


class PlatformSettings(DatabaseSettings):
    """Everything a running service needs from the platform: its database pool, the broker, user
    tokens, logging, its background work. `deployment_secrets` and `deployment_brokers` name what
    the deployment checks judge; a service adds its own there."""

    db_pool_size: int = Field(default=10, ge=1)
    amqp_url: AmqpUrl = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        validation_alias=shared("FTD_AMQP_URL"),
    )
    broker_prefix: str = Field(default="", validation_alias=shared("FTD_BROKER_PREFIX"))

    jwt_algorithm: Literal["HS256", "RS256"] = Field(
        default="HS256", validation_alias=shared("FTD_JWT_ALGORITHM")
    )
    jwt_secret: SecretStr | None = Field(default=None, validation_alias=shared("FTD_JWT_SECRET"))
    jwks_url: str | None = Field(default=None, validation_alias=shared("FTD_JWKS_URL"))
    jwt_audience: str | None = Field(default=None, validation_alias=shared("FTD_JWT_AUDIENCE"))
    jwt_issuer: str | None = Field(default=None, validation_alias=shared("FTD_JWT_ISSUER"))

    # CPython's cyclic collector runs every this many allocations (servicekit.gctune); its
    # default, 700, collects every few messages under load. 0 keeps CPython's thresholds.
    gc_gen0_threshold: int = Field(default=50_000, ge=0)
    # Background work of this process: another replica may run it instead.
    run_relay: bool = True
    run_consumers: bool = True
    # Processed event ids are kept this long (longer than any redelivery could come).
    inbox_retention_hours: float = Field(default=72, gt=0)
    access_log: bool = Field(default=True, validation_alias=shared("FTD_ACCESS_LOG"))
    json_logs: bool = Field(default=False, validation_alias=shared("FTD_JSON_LOGS"))
    log_level: str = Field(default="INFO", validation_alias=shared("FTD_LOG_LEVEL"))

    def deployment_secrets(self) -> dict[str, Secret]:
        """{variable: value} of the secrets that must be real and distinct outside development."""
        return {"FTD_JWT_SECRET": self.jwt_secret}

    def deployment_brokers(self) -> dict[str, Secret]:
        """{variable: URL} of the broker URLs that must not log in as `guest`."""
        return {"FTD_AMQP_URL": self.amqp_url}

    @model_validator(mode="after")
    def _platform_secrets(self) -> Self:
        if self.jwt_algorithm == "HS256" and self.jwt_secret is None:
            raise ValueError(
                "FTD_JWT_SECRET must be set for HS256 tokens (`make dev` generates one)."
            )
        if self.jwt_algorithm == "RS256" and not self.jwks_url:
            raise ValueError("FTD_JWKS_URL must be set for RS256 tokens.")
        check_deployment(
            environment=self.environment,
            secrets=self.deployment_secrets(),
            brokers=self.deployment_brokers(),
        )
        return self

    @property
    def broker_names(self) -> BrokerNames:
        return BrokerNames(prefix=self.broker_prefix)

    @property
    def verify_in_loop(self) -> bool:
        """Verifying an HS256 token needs no I/O: done on the event loop. RS256 may fetch the
        JWKS over HTTP, so it runs in the thread pool."""
        return self.jwt_algorithm == "HS256"

    def verifier(self) -> JwtVerifier:
        return JwtVerifier(
            algorithm=self.jwt_algorithm,
            secret=self.jwt_secret.get_secret_value() if self.jwt_secret else None,
            jwks_url=self.jwks_url,
            audience=self.jwt_audience,
            issuer=self.jwt_issuer,
        )


class DataTicketSettings(PlatformSettings):
    """PlatformSettings of a service that mints or verifies data tickets (servicekit.tickets):
    their secret is one of the deployment's secrets and required outside development; development
    falls back to the JWT secret, so that one generated secret is enough."""

    data_ticket_secret: SecretStr | None = Field(
        default=None, validation_alias=shared("FTD_DATA_TICKET_SECRET")
    )

    def deployment_secrets(self) -> dict[str, Secret]:
        return {**super().deployment_secrets(), "FTD_DATA_TICKET_SECRET": self.data_ticket_secret}

    @model_validator(mode="after")
    def _ticket_secret_present(self) -> Self:
        if self.environment != "development" and self.data_ticket_secret is None:
            raise ValueError("FTD_DATA_TICKET_SECRET must be set outside development.")
        return self

    def ticket_secret(self) -> str:
        if self.data_ticket_secret is not None:
            return self.data_ticket_secret.get_secret_value()
        return self.jwt_secret.get_secret_value() if self.jwt_secret else ""

"""The unit of work: the repositories of one transaction (or one autocommit connection); the entry
point opens and commits it (servicekit.uow)."""

from sqlalchemy.ext.asyncio import AsyncConnection

from model_server.adapters.repository import ApiKeyRepository, DeploymentRepository

SOURCE = "model-server"


class UnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.deployments = DeploymentRepository(conn)
        self.keys = ApiKeyRepository(conn)

"""The security scheme user routes declare in every service's OpenAPI document (the Authorize
button of /docs; clients and conformance tests learn from it which routes need a token). It only
reads the header (auto_error off): the check itself is JwtVerifier's, in each service's
`current_user`."""

from fastapi.security import HTTPBearer

USER_BEARER = HTTPBearer(
    scheme_name="userToken",
    bearerFormat="JWT",
    description="A user's JWT (`make token` prints a development one).",
    auto_error=False,
)

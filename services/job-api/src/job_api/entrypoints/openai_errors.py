"""job-api's OpenAI-compatible routes answer errors in OpenAI's shape (servicekit.openai_errors),
naming the job request's fields as OpenAI does."""

from servicekit.openai_errors import OpenAIRoute as _OpenAIRoute
from servicekit.openai_errors import openai_error_responses


class OpenAIRoute(_OpenAIRoute):
    param_names = {
        "base_model": "model",
        "training_data_url": "training_file",
        "output_model": "suffix",
    }


__all__ = ["OpenAIRoute", "openai_error_responses"]

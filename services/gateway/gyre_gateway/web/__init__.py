"""The chat web page: a plain HTML + vanilla JS client of the chat and feedback endpoints, served by the gateway."""

"""The API's routers, one module per resource. app.create_app includes each; a new group of
routes (the staff pages, rounds) is one more module with a `router` and one more line there."""

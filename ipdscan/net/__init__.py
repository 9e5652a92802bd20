"""The guarded HTTP client a URL is fetched through: one checked, deadline-bound GET per hop (http_get), to addresses
that are allowed (addresses), over sockets whose every read and write has a deadline (deadline_socket)."""

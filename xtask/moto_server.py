"""Start moto's S3 server with conditional writes made atomic, as they are on S3.

moto checks a write's If-Match / If-None-Match and only then stores the object, with no
lock between the two, on a threaded server: two compare-and-swap writes racing on one key
can both pass the check, and one of them is silently lost where S3 would answer it with
412 Precondition Failed. The tests of Strata's compare-and-swap need S3's behaviour, so
this launcher runs every write to a key (PUT, POST, DELETE) under one lock; reads stay
concurrent. `cargo xtask` starts moto through it, with moto_server's own arguments.
"""

import functools
import sys
import threading

from moto.s3.responses import S3Response
from moto.server import main

_WRITE = threading.Lock()


def _one_at_a_time(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _WRITE:
            return method(*args, **kwargs)

    return locked


# These names belong to the moto version xtask pins; a rename fails here, loudly.
for _name in ("_key_response_put", "_key_response_post", "_key_response_delete"):
    setattr(S3Response, _name, _one_at_a_time(getattr(S3Response, _name)))

if __name__ == "__main__":
    main(sys.argv[1:])

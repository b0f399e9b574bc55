"""The HTTP layer ("responses"): routes, query parsing, pagination, auth, limits, faults."""

from starlette.convertors import Convertor, register_url_convertor


class _IdConvertor(Convertor[int]):
    """``{id:hid}``: an API id of at most 19 digits (int64). Starlette's ``int`` convertor
    matches any length and fails with a 500 on an id longer than Python's 4300-digit limit;
    here a longer one matches no route (404 not_found)."""

    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("hid", _IdConvertor())

"""Chat templates: rendering records, and finding the text the model should learn.

`ChatTemplate` renders `messages` with the tokenizer's template (or a custom one,
`data.chat_template`) and extra template variables (`data.chat_template_kwargs`,
e.g. `enable_thinking = false` for Qwen3).

`ChatTemplate.spans` finds the assistant turns in a rendering by rendering the
conversation's prefixes and comparing, which works for any template without
knowing its markup:

- a turn starts where the rendering of the messages before it, with the
  generation prompt, stops agreeing with the whole conversation's rendering
  (the longest common prefix). So the header (`<|im_start|>assistant\\n`) is
  prompt, and whatever the model writes after it at inference is trained: with
  Qwen3's default template that includes the empty `<think>\\n\\n</think>\\n\\n`
  of the last turn, which the model writes itself in thinking mode;
- a turn ends after its end-of-turn marker: the text every template writes after
  an assistant turn whatever follows, found once by rendering two probe
  conversations (`<|im_end|>\\n` for ChatML, `<|eot_id|>` for Llama 3,
  `<end_of_turn>\\n` for Gemma). The last message, if it is an assistant turn,
  trains to the end of the text, the EOS appended after it included, as mlx-lm's
  `mask_prompt` does.

Templates that render a turn differently depending on what follows it (Qwen3
drops the reasoning of earlier turns) are handled: nothing assumes that the
rendering of a prefix is a prefix of the rendering of the whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tscu_tui.engine.errors import DataError, first_line

if TYPE_CHECKING:
    from mlx_lm.tokenizer_utils import TokenizerWrapper

#: roles a `messages` record may use
ROLES = ("system", "user", "assistant", "tool")
TRAIN_ON = ("completions", "all", "last_turn")
_PROBE_QUESTION, _PROBE_ANSWER = "tscu probe question", "tscu probe answer"
_PROBE_FOLLOW_UP = "tscu probe follow-up"

Span = tuple[int, int]  # [start, end) in characters of the rendered text


@dataclass(frozen=True)
class Rendered:
    """A record as text, and the character spans that carry loss (None: all of it).
    A span that reaches the end of the text also trains the EOS appended after it."""

    text: str
    spans: tuple[Span, ...] | None


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of `a` and `b`."""
    n = min(len(a), len(b))
    lo, hi = 0, n
    while lo < hi:  # binary search on equal prefixes: the strings are long, turns many
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def read_template_file(path: str) -> str:
    """The text of a custom template file (one-line DataError naming the key)."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: cannot read the chat template (data.chat_template): "
                        f"{getattr(exc, 'strerror', None) or exc}") from None
    if not text.strip():
        raise DataError(f"{file}: the chat template is empty (data.chat_template)")
    return text


class ChatTemplate:
    """The chat template records are rendered with, exactly as mlx-lm renders them for
    training (the tokenizer's own template unless `template` text is given)."""

    def __init__(self, tokenizer: TokenizerWrapper | None, template: str | None = None,
                 kwargs: Mapping[str, Any] | None = None, origin: str | None = None) -> None:
        self._hf: Any = getattr(tokenizer, "_tokenizer", tokenizer)
        self.custom = template
        self.kwargs = dict(kwargs or {})
        #: where the template came from, for messages and meta.json
        self.origin = origin or "the tokenizer's chat template"
        own = getattr(self._hf, "chat_template", None) if self._hf is not None else None
        self.available = bool(template or own)

    def where(self, exc: BaseException | None = None) -> str:
        """The template's origin for a message; a custom file's with the line jinja
        names (`path:line: data.chat_template`)."""
        if self.custom is None:
            return self.origin
        line = getattr(exc, "lineno", None)
        return f"{self.origin}{f':{line}' if line else ''}: data.chat_template"

    def render(self, messages: list[Any], tools: Any = None,
               add_generation_prompt: bool = False) -> str:
        assert self._hf is not None
        kwargs: dict[str, Any] = {**self.kwargs, "tokenize": False,
                                  "add_generation_prompt": add_generation_prompt}
        if tools is not None:
            kwargs["tools"] = tools
        if self.custom is not None:
            kwargs["chat_template"] = self.custom
        text = self._hf.apply_chat_template(messages, **kwargs)
        if not isinstance(text, str):  # some versions return a list when batched
            raise TypeError(f"chat template returned {type(text).__name__}, not text")
        return text

    def check(self) -> None:
        """Render a probe conversation now, so a template that cannot render fails
        before anything is read, with one line naming where it came from."""
        if self.available:
            _ = self.end_marker

    def describe(self) -> dict[str, Any]:
        """For meta.json and model cards: where the template came from, its variables,
        and a custom template's text (so samples render exactly as prepare did)."""
        return {"source": self.origin, "kwargs": dict(self.kwargs), "text": self.custom}

    @cached_property
    def end_marker(self) -> str:
        """What the template writes after an assistant turn whatever follows it: the
        common start of what follows a middle turn and what follows a last one."""
        q = {"role": "user", "content": _PROBE_QUESTION}
        a = {"role": "assistant", "content": _PROBE_ANSWER}
        try:
            last = self.render([q, a])
            middle = self.render([q, a, {"role": "user", "content": _PROBE_FOLLOW_UP},
                                  {"role": "assistant", "content": _PROBE_ANSWER}])
        except Exception as exc:  # jinja raises anything (TemplateError, TypeError, ...)
            raise DataError(f"{self.where(exc)} does not render a user/assistant exchange "
                            f"({first_line(exc)})") from None
        after_last = last[last.rfind(_PROBE_ANSWER) + len(_PROBE_ANSWER):]
        first = middle.find(_PROBE_ANSWER)
        if first < 0 or _PROBE_ANSWER not in last:
            raise DataError(f"{self.origin} drops the assistant's text from its rendering")
        after_middle = middle[first + len(_PROBE_ANSWER):]
        return after_last[:common_prefix(after_last, after_middle)]

    def conversation(self, messages: list[Any], tools: Any, train_on: str) -> Rendered:
        """`messages` rendered, with the spans `train_on` trains. DataError/ValueError
        with a short reason if a turn cannot be located."""
        text = self.render(messages, tools)
        if train_on == "all":
            return Rendered(text, None)
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if train_on == "last_turn":
            turns = turns[-1:]
        spans: list[Span] = []
        for i in turns:
            start = 0
            if i > 0:
                start = common_prefix(text, self.render(messages[:i], tools, True))
            if spans and start < spans[-1][1]:
                raise ValueError(f"assistant turn messages[{i}] starts inside the turn before "
                                 "it in the template's rendering")
            end = self._turn_end(text, start, messages, i)
            spans.append((start, end))
        return Rendered(text, tuple(spans))

    def _turn_end(self, text: str, start: int, messages: list[Any], i: int) -> int:
        if i == len(messages) - 1:
            end = len(text)
        elif (marker := self.end_marker).strip():
            found = text.find(marker, start)
            if found < 0:
                raise ValueError(f"the end of assistant turn messages[{i}] ({marker!r}) is "
                                 "not in the template's rendering")
            end = found + len(marker)
        else:  # no marker (plain-text templates): the turn is its content
            content = str(messages[i].get("content") or "").strip()
            found = text.find(content, start)
            if not content or found < 0:
                raise ValueError(f"cannot find assistant turn messages[{i}] in the template's "
                                 "rendering")
            end = found + len(content)
            end += len(marker) if text.startswith(marker, end) else 0
        content = str(messages[i].get("content") or "").strip()
        last_line = content.splitlines()[-1].strip() if content else ""
        if last_line and last_line not in text[start:end]:
            raise ValueError(f"assistant turn messages[{i}] is not where the template's "
                             "rendering puts it")
        return end


def check_messages(messages: Any, where: str) -> None:
    """A `messages` record: a non-empty list of {role, content} with known roles."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise DataError(f"{where}: messages[{i}] must be an object with a 'role'")
        role = message["role"]
        if role not in ROLES:
            raise DataError(f"{where}: messages[{i}].role: unknown role {role!r} (use "
                            f"{', '.join(ROLES)})")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise DataError(f"{where}: messages[{i}].content must be a string")


def render_record(chat: ChatTemplate, messages: list[Any], tools: Any, train_on: str,
                  where: str) -> Rendered:
    """Render a checked `messages` record, one-line DataError naming `where` on failure."""
    if train_on != "all" and not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: messages: no assistant turn to train on "
                        f"(data.train_on = \"{train_on}\")")
    try:
        return chat.conversation(messages, tools, train_on)
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(f"{where}: {exc} ({chat.where()})") from None
    except Exception as exc:  # jinja raises anything (TemplateError, TypeError, ...)
        raise DataError(f"{where}: cannot render with {chat.where(exc)} "
                        f"({first_line(exc)})") from None


def recorded_template(recorded: Mapping[str, Any] | None, tokenizer: Any) -> ChatTemplate | None:
    """The template a prepared dataset records (meta.json's `chat_template`: source,
    variables, a custom template's text), for rendering prompts as training did; None
    for plain-text data."""
    if recorded is None:
        return None
    chat = ChatTemplate(tokenizer, recorded.get("text"), recorded.get("kwargs") or {},
                        str(recorded.get("source") or "the chat template"))
    return chat if chat.available else None


def prompt_tokens(text: str, tokenizer: Any, chat: ChatTemplate | None) -> tuple[list[int], str]:
    """`text` as the model sees it when used: a user turn and the generation prompt
    through `chat`, or plain text to continue without one. (token ids, that text)"""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    if chat is None:
        return list(hf.encode(text)), text
    rendered = chat.render([{"role": "user", "content": text}], add_generation_prompt=True)
    return list(hf.encode(rendered, add_special_tokens=False)), rendered

"""Chat templates: kerastune renders real templates (the copies trl ships of Qwen's, Llama's, Gemma's, Phi's) as
transformers' `apply_chat_template` renders them; its token ids equal transformers' and its loss mask equals
transformers' `return_assistant_tokens_mask` on trl's generation-tagged training templates."""

import importlib.util
import json
from pathlib import Path

import jinja2
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

import kerastune
from kerastune.data.chat import ChatTemplate, check_messages
from kerastune.data.tokens import to_str
from kerastune.errors import KerastuneError
from kerastune.models.chat_templates import BUILT_IN, load_chat_template

TRL_TEMPLATES = Path(importlib.util.find_spec("trl").submodule_search_locations[0]) / "chat_templates"

CONVERSATIONS = {
    "one turn": [{"role": "user", "content": "How much is the mug?"},
                 {"role": "assistant", "content": "Happy to help! The mug costs 12 euros."}],
    "two turns": [{"role": "user", "content": "  Hola, ¿qué tal?\nTengo una pregunta 🙂 "},
                  {"role": "assistant", "content": "¡Muy bien! Dime.\n\n"},
                  {"role": "user", "content": 'Is {"json": true} fine? <b>bold</b>'},
                  {"role": "assistant", "content": "Yes: {\"json\": true} is fine."}],
    "system": [{"role": "system", "content": "You are the shop's assistant."},
               {"role": "user", "content": "Can I return the cap?"},
               {"role": "assistant", "content": "You can return the cap within 30 days."},
               {"role": "user", "content": "Thanks!"},
               {"role": "assistant", "content": "Anything else I can help with?"}],
}
# The added tokens and named special tokens of each family's tokenizer.
FAMILY_TOKENS = {
    "qwen": (["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>"],
             {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "llama": (["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
               "<|eom_id|>", "<|python_tag|>"], {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "gemma": (["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
              {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}),
    "phi": (["<unk>", "<s>", "</s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
            {"bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>"}),
}
REAL_TEMPLATES = {"qwen2_5": "qwen", "qwen3": "qwen", "qwen3_instruct_2507": "qwen", "llama3": "llama",
                  "llama3_1": "llama", "llama3_2": "llama", "gemma": "gemma", "gemma3": "gemma", "phi3": "phi"}


def trl_template(name: str) -> str:
    return (TRL_TEMPLATES / f"{name}.jinja").read_text()


def hf_tokenizer(directory: Path, family: str, template: str):
    """A transformers tokenizer with the family's added tokens and named tokens and this chat template,
    saved and reloaded as a checkpoint's tokenizer is; (tokenizer, directory)."""
    added, named = FAMILY_TOKENS[family]
    texts = [m["content"] for c in CONVERSATIONS.values() for m in c] * 5
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts + ["system user assistant model tool"], trainers.BpeTrainer(
        vocab_size=400, special_tokens=added, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **named)
    fast.chat_template = template
    fast.save_pretrained(directory)
    return AutoTokenizer.from_pretrained(str(directory)), directory


def split_tokenizer(hf):
    """transformers' tokenizer as the piece tokenizer `ChatTemplate.encode` calls (no special tokens added)."""
    return lambda texts: [hf(t, add_special_tokens=False)["input_ids"] for t in texts]


def hf_render(hf, messages, add_generation_prompt):
    try:
        return hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except jinja2.exceptions.TemplateError:
        return None


@pytest.mark.parametrize("name", REAL_TEMPLATES)
def test_real_templates_render_as_transformers(name, tmp_path):
    """Every conversation, with and without the generation prompt; where transformers' rendering raises (Gemma
    has no system role), kerastune names the problem in one line."""
    hf, directory = hf_tokenizer(tmp_path, REAL_TEMPLATES[name], trl_template(name))
    chat = load_chat_template(str(directory), model=None)
    for conversation in CONVERSATIONS.values():
        for add_generation_prompt in (False, True):
            expected = hf_render(hf, conversation, add_generation_prompt)
            if expected is None:
                with pytest.raises(KerastuneError, match="chat template refused"):
                    chat.render(conversation, add_generation_prompt)
            else:
                assert chat.render(conversation, add_generation_prompt) == expected


@pytest.mark.parametrize("original,training", [("llama3", "llama3_training"), ("gemma", "gemma_training"),
                                               ("qwen2_5", "qwen2_5_training")])
def test_loss_mask_and_ids_match_transformers(original, training, tmp_path):
    """trl's training template marks the assistant's tokens with {% generation %}; transformers turns the marks into
    `assistant_masks`. kerastune gives the same ids and mask from the marks, and from the original template (no
    marks: each turn found by rendering up to it) the same mask, except Qwen's: trl's block also holds the newline
    after `<|im_start|>assistant`, which the generation prompt already ends with, so kerastune leaves it out."""
    family = REAL_TEMPLATES[original]
    hf, directory = hf_tokenizer(tmp_path, family, trl_template(original))
    chat = load_chat_template(str(directory), model=None)
    tagged = ChatTemplate(trl_template(training), chat.special_tokens, chat.added_tokens)
    assert tagged.has_generation_tags and not chat.has_generation_tags
    for name, conversation in CONVERSATIONS.items():
        if family == "gemma" and name == "system":
            continue
        expected = hf.apply_chat_template(conversation, tokenize=True, return_dict=True,
                                          return_assistant_tokens_mask=True, chat_template=trl_template(training))
        for template in (tagged, chat):
            [(ids, mask)] = template.encode([template.assistant_spans(conversation)], split_tokenizer(hf))
            assert ids == list(expected["input_ids"]), name
            wanted = list(expected["assistant_masks"])
            if template is chat and family == "qwen":
                newline_after_header = [i for i in range(1, len(ids)) if ids[i] == hf.convert_tokens_to_ids("Ċ")
                                        and hf.decode(ids[:i]).endswith("<|im_start|>assistant")]
                assert newline_after_header and all(wanted[i] == 1 for i in newline_after_header)
                wanted = [0 if i in newline_after_header else m for i, m in enumerate(wanted)]
            assert mask == wanted, name


@pytest.mark.parametrize("tiny,real,family", [("tiny-qwen", "qwen2_5", "qwen"), ("tiny-llama", "llama3", "llama"),
                                              ("tiny-gemma", "gemma", "gemma")])
def test_tiny_templates_render_as_their_family(tiny, real, family):
    """The tiny models' own templates (written for the project) render what the family's template renders."""
    named = FAMILY_TOKENS[family][1]
    ours, theirs = (ChatTemplate(source, named, {}) for source in (BUILT_IN[tiny].read_text(), trl_template(real)))
    for name, conversation in CONVERSATIONS.items():
        for add_generation_prompt in (False, True):
            if family == "gemma" and name == "system":
                for template in (ours, theirs):
                    with pytest.raises(KerastuneError, match="System role not supported"):
                        template.render(conversation, add_generation_prompt)
            else:
                assert ours.render(conversation, add_generation_prompt) == theirs.render(conversation,
                                                                                         add_generation_prompt)


@pytest.mark.parametrize("tiny,end", [("tiny-qwen", "<|im_end|>"), ("tiny-llama", "<|eot_id|>"),
                                      ("tiny-gemma", "<end_of_turn>")])
def test_tiny_models_tokenize_their_chat_markup_whole(tiny, end):
    """A tiny model's chat markup (start token, turn markers) are single tokens, the end of a turn is found from the
    template, and the ids decode back to the rendered text."""
    texts = [m["content"] for c in CONVERSATIONS.values() for m in c]
    model = kerastune.load_model(tiny, texts=texts * 5, vocab_size=300)
    tokenizer = model.preprocessor.tokenizer
    chat = load_chat_template(tiny, model)
    assert chat.end_of_turn() == end
    conversation = CONVERSATIONS["two turns"]
    text, spans = chat.assistant_spans(conversation)
    [(ids, mask)] = chat.encode([(text, spans)], tokenizer)
    assert int(tokenizer.token_to_id(end)) in ids
    for token in chat.added_tokens:
        if token in text:
            assert int(tokenizer.token_to_id(token)) in ids
    assert sum(mask) > 0 and mask[0] == 0
    decoded = to_str(tokenizer.detokenize([ids])[0])
    if tiny != "tiny-gemma":  # SentencePiece normalises whitespace; byte-level BPE gives the text back exactly
        assert decoded == text
    answer = "".join(text[s:e] for s, e in spans)
    assert answer.startswith("¡Muy bien! Dime.") and answer.endswith(end + ("\n" if tiny != "tiny-llama" else ""))


def test_bad_conversations_and_templates_get_one_line(tmp_path):
    with pytest.raises(KerastuneError, match="row 3: messages is text that is not a JSON list"):
        check_messages("not json", "train row 3")
    with pytest.raises(KerastuneError, match="needs a 'role' and a 'content'"):
        check_messages([{"content": "no role"}], "train row 1")
    assert check_messages(json.dumps(CONVERSATIONS["one turn"]), "row 1") == CONVERSATIONS["one turn"]
    with pytest.raises(KerastuneError, match="not valid Jinja"):
        ChatTemplate("{% for m in messages %}{{ m.content }}", {}, {})
    # A template that rewrites earlier turns once later ones follow: the assistant turns cannot be located.
    rewriting = "{% for m in messages %}{{ m.role }}: {{ m.content if loop.last else '...' }}\n{% endfor %}" \
                "{% if add_generation_prompt %}assistant: {% endif %}"
    with pytest.raises(KerastuneError, match="renders assistant turn 2 differently"):
        ChatTemplate(rewriting, {}, {}).assistant_spans(CONVERSATIONS["two turns"])
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    (tmp_path / "tokenizer.json").write_text(json.dumps({"added_tokens": [{"id": 1, "content": "</s>"}]}))
    with pytest.raises(KerastuneError, match="has no chat template"):
        load_chat_template(str(tmp_path), model=None)
    with pytest.raises(KerastuneError, match="chat template not found"):
        load_chat_template(str(tmp_path), model=None, template=str(tmp_path / "missing.jinja"))

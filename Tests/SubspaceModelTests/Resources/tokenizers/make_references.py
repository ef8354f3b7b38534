#!/usr/bin/env python3
"""Builds the tokenizer test resources with Hugging Face `tokenizers` and `transformers`.

Run once (outputs are committed; rerun only to change them):

    python3 -m venv .venv-references && .venv-references/bin/pip install tokenizers transformers jinja2
    .venv-references/bin/python Tests/SubspaceModelTests/Resources/tokenizers/make_references.py \
        ../shared/fixtures/bpe-tokenizer/long_text.txt

Generated with tokenizers 0.23.3 and transformers 5.24.0 (no torch needed).

For each family shape (a folder here) it trains a tiny BPE on the fixture text and writes
  tokenizer.json          the shape the family ships (normalizer, pre-tokenizer, model flags, post-processor,
                          decoder, added tokens), built with the `tokenizers` API
  tokenizer_config.json   bos/eos tokens and the family's real chat template
  references.json         for every sample text: ids (add_special_tokens false and true), decodes (with and
                          without special tokens); the long fixture text's id count, SHA-256 and first ids;
                          chat renderings (text and ids) from transformers' apply_chat_template
Shapes:
  qwen2    NFC; Sequence[Split(Qwen2 regex, isolated), ByteLevel(use_regex false)]; ByteLevel decoder and
           post-processor; ChatML template of Qwen2.5 (default system prompt)
  llama3   no normalizer; Sequence[Split(Llama-3 regex), ByteLevel(use_regex false)]; ignore_merges;
           TemplateProcessing adding <|begin_of_text|>; Llama-3 template
  llama2   Sequence[Prepend("▁"), Replace(" ", "▁")]; no pre-tokenizer; byte_fallback, fuse_unk, <unk>;
           Sequence[Replace, ByteFallback, Fuse, Strip] decoder; TemplateProcessing adding <s>; Llama-2 template
  misc     Sequence[NFKC, Lowercase]; Sequence[Digits(individual), Metaspace(always, split)]; Metaspace
           decoder; byte_fallback without unk (components the families above do not use)
and pretokenizers.json: the pieces of Split with each behaviour (and invert) on a few texts.
"""
import hashlib
import json
import os
import sys
import tempfile

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))

QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

QWEN25_TEMPLATE = (
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n")

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")

SAMPLES = [
    "Hello world",
    "The year 2024 has 366 days; pi is 3.14159 and 1234567890 and 12345678901234567890.",
    "numbers 1,000,000 and 007 and 3.5e-7",
    "I'm sure they've said you'll go, he's right, we'd know, it's 'quoted' and 'tis.",
    "I'M SURE THEY'VE SAID YOU'LL GO. HE'S. WE'D. IT'S. DON'T",
    "It'S mIxEd: We'Re, They'Ll, I'D, You'vE",
    "  leading spaces and    runs   of spaces  ",
    "tabs\tand\t\ttabs \t mixed",
    "line one\nline two\n\n\nline five\n",
    "windows\r\nline\r\nendings\r\n\r\n  indented\r\n",
    "Café naïve résumé à la française — déjà vu, Œuvre, straße",
    "decomposed: Cafe\u0301 and e\u0301te\u0301 and A\u030a",
    "中文测试：你好，世界！日本語のテキスト。",
    "한국어 텍스트 and Ελληνικά and русский текст",
    "emoji 😀👍🏽 and 👨\u200d👩\u200d👧 family ❤️",
    "mixed\u00a0nbsp and \u3000 ideographic space and\u2028separator",
    "ﬁ ligature, ① circled, ２ fullwidth, Ⅻ roman",
    "code: def f(x):\n    return x**2  # comment\n\n\tpass\n",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "special <|endoftext|> inside<|endoftext|>text",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<s>[INST] Hi there [/INST] Hello </s> and <unk> too",
    "",
    " ",
    "\n",
    "a",
    "   ",
    "trailing space ",
    "What's 2+2? It's 4!!! ... (really) [yes] {no} <maybe>",
]

CHATS = [
    ("user_only", [{"role": "user", "content": "Hello, who are you?"}]),
    ("with_system", [{"role": "system", "content": "You are a terse assistant."},
                     {"role": "user", "content": "What is 2+2?"},
                     {"role": "assistant", "content": "4"}]),
    ("multi_turn", [{"role": "user", "content": "Hi!"},
                    {"role": "assistant", "content": "Hello. How can I help?"},
                    {"role": "user", "content": "  Name a colour.\n"},
                    {"role": "assistant", "content": "Blue."}]),
    ("system_multi_turn", [{"role": "system", "content": "Answer in French."},
                           {"role": "user", "content": "Hello"},
                           {"role": "assistant", "content": "Bonjour"},
                           {"role": "user", "content": "Thanks"}]),
]


def trained(tokenizer, text_file, vocab_size, special, alphabet):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, initial_alphabet=alphabet,
                                  show_progress=False)
    tokenizer.train([text_file], trainer)
    return tokenizer


def byte_level_family(text_file, pattern, specials, ignore_merges, template_bos):
    t = Tokenizer(models.BPE())
    if pattern is QWEN2_PATTERN:
        t.normalizer = normalizers.NFC()
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    t.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trained(t, text_file, 1200, specials, pre_tokenizers.ByteLevel.alphabet())
    if template_bos:
        t.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{template_bos} $A", pair=f"{template_bos} $A {template_bos} $B",
                                          special_tokens=[(template_bos, t.token_to_id(template_bos))])])
    else:
        t.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    document = json.loads(t.to_str())
    document["model"]["ignore_merges"] = ignore_merges
    return Tokenizer.from_str(json.dumps(document))


def sentencepiece_family(text_file, misc=False):
    """Llama-2's shape: the BPE is trained on Prepend/Replace-normalized text; the vocabulary is then laid out as
    Llama-2's is (<unk> <s> </s>, the 256 byte-fallback tokens <0x00>…<0xFF>, then the learned tokens)."""
    t = Tokenizer(models.BPE())
    if misc:
        t.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        t.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    else:
        t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    specials = ["<unk>", "<s>", "</s>"]
    trained(t, text_file, 1200, specials, [])
    learned = json.loads(t.to_str())["model"]
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for token, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    if misc:
        model = models.BPE(vocab=vocab, merges=merges, byte_fallback=True)
    else:
        model = models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    s = Tokenizer(model)
    s.normalizer = t.normalizer
    s.pre_tokenizer = t.pre_tokenizer
    s.add_special_tokens(specials)
    if misc:
        s.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    else:
        s.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                       decoders.Strip(content=" ", left=1, right=0)])
        s.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                         special_tokens=[("<s>", 1)])
    return s


def ids_digest(ids):
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def ids_fnv1a64(ids):
    """FNV-1a (64-bit) of the comma-joined ids, as hex: what the Swift tests recompute."""
    h = 0xCBF29CE484222325
    for b in ",".join(map(str, ids)).encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def write_family(name, tokenizer, config, long_text):
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    tokenizer.save(os.path.join(folder, "tokenizer.json"))
    if config is not None:
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=2, ensure_ascii=False)
            f.write("\n")
    samples = []
    for text in SAMPLES:
        plain = tokenizer.encode(text, add_special_tokens=False).ids
        special = tokenizer.encode(text, add_special_tokens=True).ids
        samples.append({"text": text, "ids": plain, "ids_with_special_tokens": special,
                        "decoded": tokenizer.decode(plain, skip_special_tokens=False),
                        "decoded_skipping_special": tokenizer.decode(plain, skip_special_tokens=True)})
    long_ids = tokenizer.encode(long_text, add_special_tokens=False).ids
    reference = {"samples": samples,
                 "long_text": {"fixture": "bpe-tokenizer/long_text.txt", "count": len(long_ids),
                               "sha256_of_comma_joined_ids": ids_digest(long_ids),
                               "fnv1a64_of_comma_joined_ids": ids_fnv1a64(long_ids), "first_ids": long_ids[:2000],
                               "decode_round_trip": tokenizer.decode(long_ids) == long_text}}
    if config is not None:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(folder)
        chats = []
        for chat_name, messages in CHATS:
            for generation_prompt in (False, True):
                text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
                ids = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
                if not isinstance(ids, list):  # transformers 5 returns a BatchEncoding
                    ids = ids["input_ids"]
                chats.append({"name": chat_name, "messages": messages, "add_generation_prompt": generation_prompt,
                              "text": text, "ids": list(ids)})
        reference["chats"] = chats
    with open(os.path.join(folder, "references.json"), "w") as f:
        json.dump(reference, f, ensure_ascii=False)
        f.write("\n")


def split_references():
    texts = ["Hello, world!  How are you?", "a--b---c", " lead and trail ", "1x22y333z"]
    cases = []
    for pattern, is_regex in ((" ", False), ("-", False), (r"\d+", True), (r"\s+", True)):
        for behavior in ("removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"):
            for invert in (False, True):
                split = pre_tokenizers.Split(Regex(pattern) if is_regex else pattern, behavior=behavior, invert=invert)
                for text in texts:
                    pieces = [p for p, _ in split.pre_tokenize_str(text)]
                    cases.append({"pattern": pattern, "regex": is_regex, "behavior": behavior, "invert": invert,
                                  "text": text, "pieces": pieces})
    with open(os.path.join(HERE, "pretokenizers.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False)
        f.write("\n")


def main():
    text_file = sys.argv[1]
    with open(text_file, encoding="utf-8") as f:
        long_text = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        training = os.path.join(tmp, "training.txt")
        with open(training, "w", encoding="utf-8") as f:
            f.write(long_text)
        qwen_specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        qwen = byte_level_family(training, QWEN2_PATTERN, qwen_specials, False, None)
        write_family("qwen2", qwen, {
            "tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>", "unk_token": None, "add_prefix_space": False,
            "model_max_length": 32768, "chat_template": QWEN25_TEMPLATE}, long_text)
        llama3_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                           "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        llama3 = byte_level_family(training, LLAMA3_PATTERN, llama3_specials, True, "<|begin_of_text|>")
        write_family("llama3", llama3, {
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot_id|>", "model_max_length": 8192, "chat_template": LLAMA3_TEMPLATE}, long_text)
        llama2 = sentencepiece_family(training)
        write_family("llama2", llama2, {
            "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": True, "add_eos_token": False,
            "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False,
                          "rstrip": False, "single_word": False},
            "eos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": False, "normalized": False,
                          "rstrip": False, "single_word": False},
            "unk_token": "<unk>", "legacy": True, "model_max_length": 4096, "chat_template": LLAMA2_TEMPLATE},
            long_text)
        misc = sentencepiece_family(training, misc=True)
        write_family("misc", misc, None, long_text)
    split_references()


if __name__ == "__main__":
    main()

"""The provider kit: what every provider module is built from, so that a provider module holds only what is true of
its provider (which methods to patch, how its requests, responses and stream events read).

- ``endpoint``: ``Endpoint``, a patched method whose steps are hooks (target, request attributes, fingerprint, read the
  result, a stream handler), given as functions or overridden by a subclass; ``wrappers.sync_wrapper``/
  ``async_wrapper`` run it. Modules whose SDK calls have another shape (positional arguments, botocore's
  ``_make_api_call``, a stream manager) implement ``wrappers.Endpoint``'s two methods directly.
- ``targets``: ``server.address``/``server.port`` of a base URL (object or string, memoised) and the provider of an
  OpenAI-compatible host.
- ``requests``: request keyword arguments → ``gen_ai.request.*`` attributes.
- ``usage``: the usage shapes shared by several SDKs (OpenAI's, and "input excludes the cache" as Anthropic's).
- ``content``: message text, fingerprints, and captured content in the GenAI JSON shape, cut so it stays JSON.
- ``anthropic_messages``: Anthropic's Messages API answers (a ``Message``, its stream events), from the SDK's objects
  or JSON (Bedrock's Claude bodies): the anthropic module and Bedrock's InvokeModel read them the same way.
- ``raw``: ``with_raw_response``/``with_streaming_response`` proxies for Stainless SDKs.
- ``capture``: where captured content goes (span attributes, a content event through the app's LoggerProvider).
- ``retries``: the retry count of Stainless SDKs (``_sleep_for_retry``).
- ``stainless``: the endpoints of an OpenAI-shaped Stainless SDK (openai's and clones such as groq's), subclasses of
  ``endpoint.Endpoint``.
Stream proxies are ``promptpulse.instrumentation.streams`` (the span's end on exhaustion, break, close, error, GC).
"""

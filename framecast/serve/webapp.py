"""The web page (Gradio, mounted at /): Generate, Lens and Arena tabs over the server's queue.

Generate submits through `Server.submit`, the path `POST /v1/videos` takes, so the page and API
clients share one queue and one set of limits; the clip's frames appear as they are made
(hybrid models) and the finished clip plays in the page.
"""

from __future__ import annotations

import gradio as gr

from framecast.serve.webjobs import DEFAULT, follow_job, form_request, matrix_picture, model_defaults, model_summary
from framecast.serve.webviews import arena_plots, arena_tables, lens_pictures

SCHEDULES = [DEFAULT, "full", "autoregressive", "pyramid"]
DECODES = [DEFAULT, "raster", "diagonal", "set"]


def _generate_tab(server, names: list[str]) -> None:
    from framecast.sampling.samplers import SAMPLERS

    first = names[0] if names else None
    d_steps, d_guidance, d_frames = model_defaults(server, first) if first else (None, None, None)
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="prompt", value="a big red circle moves right and a small blue square moves left", elem_id="prompt")
            switches = gr.Textbox(label="prompt switches (hybrid models): one a line, FRAME: PROMPT, from that video frame on",
                                  placeholder="24: a big red circle moves up", lines=1, max_lines=8, elem_id="switches")
            with gr.Row():
                model = gr.Dropdown(names, value=first, label="model", elem_id="model")
                sampler = gr.Dropdown([DEFAULT, *SAMPLERS], value=DEFAULT, label="sampler (diffusion, hybrid)")
            card = gr.Markdown(model_summary(server, first) if first else "")
            with gr.Row():
                steps = gr.Number(d_steps, label="steps", precision=0, minimum=1, elem_id="steps")
                guidance = gr.Number(d_guidance, label="guidance", minimum=0, elem_id="guidance")
                seed = gr.Number(0, label="seed", precision=0, minimum=0)
                frames = gr.Number(d_frames, label="frames", precision=0, minimum=1, elem_id="frames")
            with gr.Row():
                schedule = gr.Dropdown(SCHEDULES, value=DEFAULT, label="schedule (hybrid)")
                decode = gr.Dropdown(DECODES, value=DEFAULT, label="decoding order (token models)")
            levels = gr.Textbox(label="noise levels (diffusion, hybrid): highest first, e.g. 1, 0.75, 0.5, 0.25; they set the steps "
                                "(empty: the steps above)", lines=1, elem_id="levels")
            matrix = gr.Image(matrix_picture(server, first, DEFAULT, d_frames, d_steps) if first else None, interactive=False, height=240,
                              label="noise-level matrix: rows are steps, columns token-frames; white is noise, black clean")
            with gr.Accordion("image to video, continuation", open=False):
                with gr.Row():
                    image = gr.Image(label="first frame", type="numpy", sources=["upload"])
                    video = gr.Video(label="clip to continue", sources=["upload"])
                context = gr.Number(None, label="frames of the clip to keep (empty: all)", precision=0)
            with gr.Row():
                go = gr.Button("Generate", variant="primary", elem_id="generate")
                stop = gr.Button("Cancel")
        with gr.Column(scale=2):
            status = gr.Markdown("", elem_id="status")
            preview = gr.Image(label="frames as they are made", interactive=False)
            clip = gr.Video(label="clip", autoplay=True, loop=True, interactive=False, elem_id="clip")
            download = gr.File(label="download")
    job_id = gr.State(None)

    def run(*values):
        try:
            request = form_request(*values)
            for jid, line, frames_so_far, path in follow_job(server, request):
                yield jid, line, frames_so_far, path, path
        except ValueError as e:
            raise gr.Error(str(e)) from None

    form = [prompt, model, sampler, steps, guidance, seed, frames, schedule, decode, image, video, context, switches, levels]
    go.click(run, form, [job_id, status, preview, clip, download])
    stop.click(lambda jid: server.cancel(jid) and None if jid else None, job_id, None)
    model.change(lambda m: (model_summary(server, m), *model_defaults(server, m)), model, [card, steps, guidance, frames])
    for widget in (model, schedule, frames, steps, levels):
        widget.change(lambda m, s, f, k, lv: matrix_picture(server, m, s, f, k, lv), [model, schedule, frames, steps, levels], matrix)


def _lens_tab(server, names: list[str]) -> None:
    gr.Markdown("What the model believes the clip is at every step and every layer (`framecast lens`).")
    with gr.Row():
        prompt = gr.Textbox(label="prompt", value="a big red circle moves right", scale=3)
        model = gr.Dropdown(names, value=names[0] if names else None, label="model", elem_id="lens-model")
        seed = gr.Number(0, label="seed", precision=0)
        steps = gr.Number(None, label="steps (empty: the model's)", precision=0)
    go = gr.Button("Look", variant="primary")
    gallery = gr.Gallery(label="lens", columns=1, object_fit="contain", height="auto")

    def look(p, m, s, k):
        try:
            return lens_pictures(server, m, p, s, k)
        except ValueError as e:
            raise gr.Error(str(e)) from None

    go.click(look, [prompt, model, seed, steps], gallery)


def _arena_tab() -> None:
    tables = arena_tables()
    if not tables:
        gr.Markdown("No arena report here: run `framecast arena --output docs/arena.md` in the repository.")
        return
    gr.Markdown("The committed arena report (`docs/arena.md`): the families on the same prompts and seeds.")
    for title, (headers, rows) in tables.items():
        gr.Markdown(f"### {title}")
        gr.Dataframe(value=rows, headers=headers, interactive=False, wrap=True)
    gr.Gallery(value=arena_plots(), label="plots", columns=2, object_fit="contain", height="auto")


def build_page(server) -> gr.Blocks:
    cards = server.model_cards()
    # a hybrid first, where one is offered: it streams, so the page shows frames as they are made
    names = [c["name"] for c in sorted(cards, key=lambda c: c["family"] != "hybrid")]
    with gr.Blocks(title="framecast") as page:
        gr.Markdown("# framecast\nText to video with diffusion, hybrid and token models. "
                    "The HTTP API is at [/docs](/docs); this page uses the same job queue.")
        with gr.Tab("Generate"):
            _generate_tab(server, names)
        with gr.Tab("Lens"):
            _lens_tab(server, names)
        with gr.Tab("Arena"):
            _arena_tab()
    return page


def mount(app, server):
    """The FastAPI app with the page at /; result files are served from the state folder."""
    from framecast.serve.webviews import ARENA_DIR

    allowed = [str(server.store.results.resolve()), str(ARENA_DIR)]
    return gr.mount_gradio_app(app, build_page(server), path="/", allowed_paths=allowed,
                               max_file_size=server.config.max_body_bytes, footer_links=["api"])

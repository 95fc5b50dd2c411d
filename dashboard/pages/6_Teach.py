"""Teach: the sample set as a gallery by digit, zips in and out, and fine-tuning the active model on it."""

import streamlit as st

import common
import teach_view
from mnist_core.jobs import QueueFull
from mnist_core.samples import SampleError, export_zip, import_zip, list_sets, read_set
from wording import literal

model = common.page("Teach", ":material/school:")
st.title("Teach it your handwriting")
st.caption(
    "Correct readings on the Draw page (or upload a zip of digit folders) and they land here; Teach fine-tunes the "
    "active model on them, mixed with MNIST so it forgets nothing, in seconds."
)
queue = common.training_queue(str(common.checkpoint_dir()))

name_column, upload_column = st.columns([1, 2])
with name_column:
    st.session_state.setdefault("sample_set", "mine")
    name = st.text_input("Sample set", key="sample_set", help="a folder of your digits: <set>/<digit>/<name>.png")
    try:
        directory = teach_view.current_set()
    except SampleError as exc:
        st.error(literal(str(exc)))
        st.stop()
    others = [s for s in list_sets() if s != name]
    if others:
        st.caption("Other sets here:")
        st.text(", ".join(others))
found = read_set(directory)
with upload_column:
    upload = st.file_uploader("Add a zip of digit folders (0/…, 1/…, …)", type=["zip"], key="zip")
    if upload is not None and st.session_state.get("imported") != upload.file_id:
        try:
            added, skipped = import_zip(upload.getvalue(), directory)
        except SampleError as exc:
            st.error(literal(str(exc)))
        else:
            st.session_state.imported = upload.file_id
            st.success(f"Added {len(added)} samples from the zip.")
            if skipped:
                with st.expander(f"{len(skipped)} entries skipped"):
                    st.text("\n".join(skipped))
            found = read_set(directory)
    st.download_button(
        "Download the set as a zip",
        export_zip(directory) if len(found) else b"",
        file_name=f"{directory.name}.zip",
        mime="application/zip",
        disabled=not len(found),
        icon=":material/download:",
    )
if found.skipped:
    with st.expander(f"{len(found.skipped)} files in the set were skipped", icon=":material/warning:"):
        st.text("\n".join(found.skipped))

st.subheader(f"{len(found)} samples")
teach_view.gallery(found)

st.subheader("Teach")
if model is None:
    st.warning("No model to teach yet: train one on the Train page.")
    st.stop()
job = queue.find(st.session_state.get("teach_job", ""))
busy = job is not None and not job.done
if st.button("Teach", type="primary", icon=":material/school:", disabled=busy or not len(found)):
    try:
        job = queue.submit_finetune(model, directory)
    except QueueFull as exc:
        st.error(literal(str(exc)))
    else:
        st.session_state.teach_job, st.session_state.teach_base = job.name, model.name
        st.rerun()  # drawn again as busy: the button off, the progress refreshed every second
st.caption(f"Fine-tunes the active model on the {len(found)} samples above into a new model.")


@st.fragment(run_every=1.0 if busy else None)
def progress() -> None:
    job = queue.find(st.session_state.get("teach_job", ""))
    if job is None:
        return
    job.heartbeat()
    if not job.done:
        common.show_progress(job, queue)
        return
    if busy:  # it ended while this fragment was the only part refreshing: draw the whole page again
        st.rerun(scope="app")
    if job.status != "finished" or job.checkpoint is None:
        st.error(f"Teaching {job.status}.")
        st.text(job.error)
        return
    st.success(f"{literal(job.name)} is ready.")
    by_name = {c.name: c for c in common.all_checkpoints()[0]}
    base = by_name.get(st.session_state.get("teach_base", ""))
    if st.button(f"Use {job.name}", key="use-taught", disabled=st.session_state.get("active_model") == job.name):
        common.select_model(job.name)
        st.rerun()
    if base is not None:
        teach_view.before_after(base, job.checkpoint, read_set(teach_view.current_set()))


progress()

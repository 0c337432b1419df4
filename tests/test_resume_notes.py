"""What a resumed run says about the metrics.jsonl lines it has not got."""

from tinyformer.train import TrainConfig, Trainer


def test_steps_taken_by_hand_are_not_said_to_have_lost_their_lines(tmp_path):
    # Trainer.train_step() in a loop of one's own writes no metrics.jsonl lines (train()'s loop
    # writes them): the note said they were "lost since they were written", which they never
    # were.
    config = TrainConfig(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4, iters=6,
                         eval_every=3, eval_iters=1, sample_tokens=4)
    trainer = Trainer.start(config, str(tmp_path), log=lambda *_: None)
    trainer.train_step()
    trainer.train_step()
    trainer.save()
    trainer.close()
    said = []
    Trainer.resume(str(tmp_path), log=said.append).close()
    notes = [line for line in said if "metrics.jsonl" in line]
    assert len(notes) == 1 and "has no lines for steps 1 to 2 (" in notes[0]
    assert "never written: steps taken with Trainer.train_step() write none" in notes[0]

"""Reference solution: beam search."""


def beam_search(next_log_probs, prompt, beam_size, max_new_tokens, end_id):
    beams = [([int(i) for i in prompt], 0.0)]
    best = None                                   # (tokens, log_prob) of the best finished
    for _ in range(max_new_tokens):
        candidates = []
        for b, (tokens, log_prob) in enumerate(beams):
            token_log_probs = next_log_probs(list(tokens))
            for v, lp in enumerate(token_log_probs):
                candidates.append((log_prob + float(lp), b, v))
        candidates.sort(key=lambda c: -c[0])      # stable: ties keep beam, then token order
        next_beams = []
        for log_prob, b, v in candidates:
            tokens = beams[b][0] + [v]
            if v == end_id:
                if best is None or log_prob > best[1]:
                    best = (tokens, log_prob)
            else:
                next_beams.append((tokens, log_prob))
                if len(next_beams) == beam_size:
                    break
        beams = next_beams
        if not beams or (best is not None and best[1] >= max(lp for _, lp in beams)):
            break
    for tokens, log_prob in beams:
        if best is None or log_prob > best[1]:
            best = (tokens, log_prob)
    return best

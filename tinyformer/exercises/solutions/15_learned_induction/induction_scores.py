def previous_token_score(pattern):
    T = pattern.shape[0]
    return float(np.mean([pattern[t, t - 1] for t in range(1, T)]))


def induction_score(pattern, ids):
    picked = []
    for t in range(len(ids)):
        earlier = np.flatnonzero(ids[:t] == ids[t])
        if len(earlier):
            picked.append(pattern[t, earlier[-1] + 1])
    return float(np.mean(picked)) if picked else 0.0

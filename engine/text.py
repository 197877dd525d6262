"""Small facts about written language shared by search and answering."""

from __future__ import annotations

# English words too common to say what a question or query is about.
STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't
    down during each either else ever few for from further get got had hadn't has hasn't have haven't having
    he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into
    is isn't it it's its itself just let's like may me might more most much must mustn't my myself no nor not
    now of off on once only or other ought our ours ourselves out over own please same shall shan't she she'd
    she'll she's should shouldn't so some such tell than that that's the their theirs them themselves then there
    there's these they they'd they'll they're they've this those through to too under until up upon us very
    was wasn't we we'd we'll we're we've were weren't what what's when when's where where's whether which while
    who who's whom whose why why's will with won't would wouldn't yet you you'd you'll you're you've your yours
    yourself yourselves s t d ll m re ve""".split()
)
# Korean particles (josa) that attach to the end of a word, longest first:
# "서울에서" is the word "서울" with "에서".
KOREAN_PARTICLES = tuple(sorted(
    """에서는 에서도 으로는 으로도 에게서 에게는 한테서 까지는 부터는 이라고 라고 에서 에게 한테 으로 부터 까지 하고 이랑 처럼
    보다 마다 밖에 이나 이든 은 는 이 가 을 를 의 에 도 와 과 로 만 랑 나""".split(), key=len, reverse=True))


def is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3"


def strip_particle(word: str) -> str:
    for particle in KOREAN_PARTICLES:
        if word.endswith(particle) and len(word) > len(particle):
            return word[: -len(particle)]
    return word

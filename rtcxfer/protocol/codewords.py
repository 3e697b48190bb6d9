"""The fixed word list of code mode: 256 words, one byte each (docs/protocol.md).

Short, common, distinct nouns that are easy to say and to type on a phone. The
list is part of the wire contract: the page (``web/static/codewords.js``) holds
the same 256 words in the same order.
"""

from __future__ import annotations

WORDS: tuple[str, ...] = (
    "acorn", "acrobat", "actor", "adobe", "agent", "alarm", "album", "alien", "amber", "anchor",
    "angle", "ankle", "apple", "apron", "arrow", "atlas", "attic", "autumn", "badge", "bagel",
    "baker", "bamboo", "banana", "banjo", "barn", "basket", "beach", "beacon", "beaver",
    "beetle", "berry", "bishop", "blanket", "bonnet", "border", "bottle", "bracket", "branch",
    "bread", "breeze", "brick", "bridge", "broom", "bubble", "bucket", "bugle", "butter",
    "button", "cabin", "cactus", "camel", "camera", "candle", "canoe", "canyon", "carpet",
    "carrot", "castle", "cattle", "cello", "cement", "chalk", "cherry", "chess", "circus",
    "cliff", "clock", "cloud", "clover", "cobra", "coconut", "comet", "copper", "coral",
    "cotton", "cradle", "crater", "cricket", "crown", "crystal", "dancer", "desert", "diamond",
    "dolphin", "donkey", "dragon", "drawer", "drum", "eagle", "easel", "echo", "elbow", "ember",
    "engine", "falcon", "feather", "fence", "ferry", "fiddle", "finger", "flute", "forest",
    "fossil", "fox", "galaxy", "garden", "garlic", "gecko", "geyser", "ginger", "glacier",
    "globe", "goblet", "gopher", "granite", "grape", "guitar", "hammer", "harbor", "harp",
    "hazel", "helmet", "heron", "honey", "hornet", "igloo", "island", "ivory", "jacket",
    "jaguar", "jelly", "jigsaw", "jungle", "kayak", "kettle", "kiwi", "koala", "ladder",
    "lagoon", "lantern", "lemon", "lentil", "lily", "lizard", "lobster", "locket", "magnet",
    "mango", "maple", "marble", "meadow", "melon", "mirror", "mitten", "monkey", "muffin",
    "mustard", "napkin", "nectar", "needle", "nickel", "noodle", "nutmeg", "oasis", "ocean",
    "olive", "onion", "orbit", "orchid", "otter", "owl", "oyster", "paddle", "panda", "panther",
    "papaya", "parrot", "peanut", "pebble", "pelican", "pepper", "piano", "pickle", "pigeon",
    "pillow", "pilot", "pine", "planet", "plum", "pocket", "pony", "poppy", "potato", "pumpkin",
    "puppet", "quartz", "quilt", "rabbit", "radar", "radish", "raven", "ribbon", "river",
    "robin", "rocket", "saddle", "salmon", "sandal", "saturn", "scarf", "shadow", "shovel",
    "silver", "sketch", "sparrow", "spider", "spinach", "sponge", "squash", "statue", "stove",
    "sugar", "summit", "sunset", "swan", "tablet", "teapot", "temple", "thistle", "thunder",
    "tiger", "timber", "toast", "tomato", "torch", "tractor", "trumpet", "tulip", "tunnel",
    "turkey", "turtle", "valley", "velvet", "violin", "volcano", "waffle", "walnut", "walrus",
    "whale", "whistle", "willow", "window", "wizard", "yogurt", "zebra", "zipper",
)

assert len(WORDS) == 256 and len(set(WORDS)) == 256

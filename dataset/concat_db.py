"""Several image databases with the same classes, used as one (e.g. VOC 2007 + 2012)."""
from .imdb import Imdb


class ConcatDB(Imdb):
    """Records and issue reports of `imdbs` in order; all must share one class list."""

    def __init__(self, imdbs, shuffle=False, seed=0):
        if not imdbs:
            raise ValueError('ConcatDB needs at least one image database')
        classes = imdbs[0].classes
        for db in imdbs[1:]:
            if db.classes != classes:
                raise ValueError('cannot concatenate %s and %s: class lists differ (%s vs %s)'
                                 % (imdbs[0].name, db.name, classes, db.classes))
        super().__init__('+'.join(db.name for db in imdbs), classes,
                         any(db.true_negative_images for db in imdbs))
        self.imdbs = list(imdbs)
        for db in imdbs:
            self.records.extend(db.records)
            self.issues.issues.extend(db.issues.issues)  # already logged by `db`
        self.records = self.shuffled_records(shuffle, seed)

// Every string a person reads, in one table: French first (the default), English beside it.
// `t('key', { n: 3 })` fills `{n}`; a missing key shows itself, never a blank.

export const LANGS = ['fr', 'en'] as const;
export type Lang = (typeof LANGS)[number];

const table = {
  'app.name': ['Dream', 'Dream'],
  'app.tagline': ['Des personnages qui se souviennent de vous.', 'Characters who remember you.'],
  'app.skip': ['Aller au contenu', 'Skip to content'],
  'app.loading': ['Chargement…', 'Loading…'],
  'app.language': ['Langue', 'Language'],
  'app.switchTo': ['English', 'Français'],
  'nav.main': ['Navigation principale', 'Main navigation'],
  'nav.discover': ['Découvrir', 'Discover'],
  'nav.chats': ['Discussions', 'Chats'],
  'nav.search': ['Recherche', 'Search'],
  'nav.profile': ['Profil', 'Profile'],
  'nav.signOut': ['Se déconnecter', 'Sign out'],
  'auth.signIn': ['Se connecter', 'Sign in'],
  'auth.signUp': ['Créer un compte', 'Create an account'],
  'auth.email': ['E-mail', 'Email'],
  'auth.password': ['Mot de passe', 'Password'],
  'auth.passwordHint': ['8 caractères au moins.', 'At least 8 characters.'],
  'auth.displayName': ['Votre prénom', 'Your name'],
  'auth.haveAccount': ['Déjà un compte ? Se connecter', 'Already have an account? Sign in'],
  'auth.noAccount': ['Pas encore de compte ? En créer un', 'No account yet? Create one'],
  'auth.demo': ['Compte de démonstration : {email} / {password}', 'Demo account: {email} / {password}'],
  'auth.welcome': ['Bienvenue sur Dream', 'Welcome to Dream'],
  'auth.signedOut': ['Vous êtes déconnecté·e.', 'You are signed out.'],
  'discover.title': ['Découvrir', 'Discover'],
  'discover.filter': ['Filtrer par thème', 'Filter by tag'],
  'discover.all': ['Tous', 'All'],
  'discover.match': ['Matcher', 'Match'],
  'discover.matched': ['Déjà matché·e — discuter', 'Matched — chat'],
  'discover.empty': ['Aucun personnage pour ce thème.', 'No character with this tag.'],
  'discover.greeting': ['Son premier message', 'Their first message'],
  'own.create': ['Créer un personnage', 'Create a character'],
  'own.import': ['Importer une carte', 'Import a card'],
  'own.name': ['Nom', 'Name'],
  'own.tagline': ['En une ligne', 'In one line'],
  'own.persona': ['Personnalité', 'Persona'],
  'own.personaHint': ['Comment il ou elle parle, ce qu’il ou elle aime, son histoire : c’est ce que lit l’IA.', 'How they speak, what they love, their story: this is what the AI reads.'],
  'own.greeting': ['Premier message', 'First message'],
  'own.tags': ['Thèmes (séparés par des virgules)', 'Tags (comma-separated)'],
  'own.save': ['Créer', 'Create'],
  'own.cancel': ['Annuler', 'Cancel'],
  'own.badge': ['à vous', 'yours'],
  'own.export': ['Exporter la carte', 'Export the card'],
  'own.delete': ['Supprimer', 'Delete'],
  'own.confirmDelete': ['Supprimer {name}, avec votre conversation, ses photos et ses souvenirs ?', 'Delete {name}, with your conversation, its photos and memories?'],
  'own.created': ['Personnage créé : il n’est visible que par vous.', 'Character created: only you can see it.'],
  'own.imported': ['Carte importée.', 'Card imported.'],
  'own.deleted': ['{name} a été supprimé·e.', '{name} was deleted.'],
  'own.edit': ['Modifier', 'Edit'],
  'own.editing': ['Modifier {name}', 'Edit {name}'],
  'own.saveChanges': ['Enregistrer', 'Save'],
  'own.saved': ['Modifications de {name} enregistrées.', 'Changes to {name} saved.'],
  'own.avatar': ['Avatar', 'Avatar'],
  'own.avatarChoose': ['Choisir une image', 'Choose an image'],
  'own.avatarHint': ['PNG, JPEG ou WebP ; 8 Mo et 4096 × 4096 pixels au plus.', 'PNG, JPEG or WebP; at most 8 MB and 4096 × 4096 pixels.'],
  'own.avatarPreview': ['Aperçu du nouvel avatar', 'Preview of the new avatar'],
  'own.avatarSave': ['Utiliser cette image', 'Use this image'],
  'own.avatarCancel': ['Ne pas l’utiliser', 'Don’t use it'],
  'own.avatarRemove': ['Retirer l’avatar', 'Remove the avatar'],
  'own.avatarSaved': ['Avatar enregistré.', 'Avatar saved.'],
  'own.avatarRemoved': ['Avatar retiré.', 'Avatar removed.'],
  'own.avatarType': ['Ce fichier n’est pas une image PNG, JPEG ou WebP.', 'This file is not a PNG, JPEG or WebP image.'],
  'own.avatarSize': ['Cette image dépasse 8 Mo : choisissez-en une plus légère.', 'This image is over 8 MB: choose a lighter one.'],
  'own.avatarPixels': ['Cette image dépasse 4096 × 4096 pixels : choisissez-en une plus petite.', 'This image is over 4096 × 4096 pixels: choose a smaller one.'],
  'chats.title': ['Discussions', 'Chats'],
  'chats.empty': ['Pas encore de discussion. Découvrez des personnages pour commencer.', 'No chats yet. Discover characters to begin.'],
  'chats.unread': ['{n} non lu(s)', '{n} unread'],
  'chats.affection': ['Affection {n}', 'Affection {n}'],
  'chats.noMessage': ['Dites bonjour !', 'Say hello!'],
  'chats.photo': ['📷 Photo', '📷 Photo'],
  'chats.markAllRead': ['Tout marquer comme lu', 'Mark all as read'],
  'chats.allRead': ['Toutes les discussions sont lues.', 'Every chat is read.'],
  'conv.back': ['Retour aux discussions', 'Back to chats'],
  'conv.placeholder': ['Écrire un message…', 'Write a message…'],
  'conv.send': ['Envoyer', 'Send'],
  'conv.typing': ['{name} écrit…', '{name} is typing…'],
  'conv.older': ['Messages plus anciens', 'Older messages'],
  'conv.start': ['Début de la conversation', 'Beginning of the conversation'],
  'conv.retry': ['Réessayer', 'Retry'],
  'conv.failed': ['Non envoyé', 'Not sent'],
  'conv.sending': ['Envoi…', 'Sending…'],
  'conv.regenerate': ['Autre réponse', 'Another reply'],
  'conv.continue': ['Continuer', 'Continue'],
  'conv.replyTools': ['La réponse de {name}', '{name}’s reply'],
  'conv.version': ['Version {n} sur {total}', 'Version {n} of {total}'],
  'conv.previousVersion': ['Version précédente', 'Previous version'],
  'conv.nextVersion': ['Version suivante', 'Next version'],
  'conv.photos': ['Photos', 'Photos'],
  'conv.memories': ['Souvenirs', 'Memories'],
  'conv.photoAlt': ['Photo envoyée par {name}', 'Photo sent by {name}'],
  'conv.messages': ['Messages', 'Messages'],
  'conv.you': ['Vous', 'You'],
  'conv.edit': ['Modifier', 'Edit'],
  'conv.editLabel': ['Nouveau texte du message', 'The message’s new text'],
  'conv.save': ['Enregistrer', 'Save'],
  'conv.cancel': ['Annuler', 'Cancel'],
  'conv.delete': ['Supprimer', 'Delete'],
  'conv.confirmDelete': ['Supprimer ce message ? Ce que {name} en avait retenu sera oublié.', 'Delete this message? What {name} remembered of it will be forgotten.'],
  'conv.unmatch': ['Ne plus matcher', 'Unmatch'],
  'conv.confirmUnmatch': ['Ne plus matcher {name} ? La conversation, ses photos et ses souvenirs seront effacés pour de bon.', 'Unmatch {name}? The conversation, its photos and memories will be erased for good.'],
  'conv.unmatched': ['Vous ne matchez plus avec {name}.', 'You no longer match with {name}.'],
  'conv.settings': ['Réglages', 'Settings'],
  'conv.resumed': ['Connexion retrouvée, la réponse reprend.', 'Connection back, the reply resumes.'],
  'photos.title': ['Photos de {name}', 'Photos from {name}'],
  'photos.empty': ['Pas encore de photo. Elles arrivent quand l’affection grandit.', 'No photo yet. They come as affection grows.'],
  'photos.close': ['Fermer', 'Close'],
  'photos.prev': ['Précédente', 'Previous'],
  'photos.next': ['Suivante', 'Next'],
  'photos.more': ['Plus de photos', 'More photos'],
  'search.title': ['Recherche', 'Search'],
  'search.label': ['Chercher dans toutes les conversations', 'Search all conversations'],
  'search.go': ['Chercher', 'Search'],
  'search.none': ['Aucun message ne correspond.', 'No message matches.'],
  'search.results': ['{n} résultat(s)', '{n} result(s)'],
  'memories.title': ['Ce dont {name} se souvient', 'What {name} remembers'],
  'memories.empty': ['Aucun souvenir pour l’instant.', 'No memories yet.'],
  'memories.edit': ['Modifier', 'Edit'],
  'memories.delete': ['Oublier', 'Forget'],
  'memories.save': ['Enregistrer', 'Save'],
  'memories.cancel': ['Annuler', 'Cancel'],
  'memories.add': ['Ajouter un souvenir', 'Add a memory'],
  'memories.content': ['Souvenir', 'Memory'],
  'memories.importance': ['Importance', 'Importance'],
  'memories.confirmDelete': ['Oublier ce souvenir ?', 'Forget this memory?'],
  'memories.saved': ['Souvenir enregistré.', 'Memory saved.'],
  'profile.title': ['Profil', 'Profile'],
  'profile.level': ['Niveau {n}', 'Level {n}'],
  'profile.xp': ['{n} XP', '{n} XP'],
  'profile.nextLevel': ['{n} XP avant le niveau suivant', '{n} XP to the next level'],
  'profile.stats': ['Statistiques', 'Stats'],
  'profile.leaderboard': ['Classement', 'Leaderboard'],
  'profile.rank': ['Rang', 'Rank'],
  'profile.levelLabel': ['Niveau', 'Level'],
  'profile.unread': ['Non lus', 'Unread'],
  'profile.you': ['(vous)', '(you)'],
  'profile.name': ['Nom affiché', 'Display name'],
  'profile.save': ['Enregistrer', 'Save'],
  'profile.saved': ['Profil enregistré.', 'Profile saved.'],
  'profile.since': ['Membre depuis le {d}', 'Member since {d}'],
  'writeFirst.title': ['Quand le silence dure', 'When it has been quiet'],
  'writeFirst.enabled': ['Les personnages peuvent m’écrire en premier', 'Characters may write to me first'],
  'writeFirst.when': ['Après {h} h sans nouvelles, jamais entre {quiet} ({tz}).', 'After {h} h without news, never between {quiet} ({tz}).'],
  'writeFirst.whenAnytime': ['Après {h} h sans nouvelles, à toute heure.', 'After {h} h without news, at any hour.'],
  'writeFirst.useHere': ['Utiliser mon fuseau horaire ({tz})', 'Use my time zone ({tz})'],
  'writeFirst.saved': ['Réglage enregistré.', 'Setting saved.'],
  'writeFirst.matchTitle': ['Réglages de la conversation avec {name}', 'Settings of the conversation with {name}'],
  'writeFirst.match': ['{name} peut m’écrire en premier', '{name} may write to me first'],
  'writeFirst.matchHint': ['Quand vous ne vous écrivez plus depuis un moment, {name} peut prendre de vos nouvelles.', 'When you have not written to each other for a while, {name} may check in on you.'],
  'writeFirst.after': ['Après un silence de', 'After a silence of'],
  'writeFirst.afterDefault': ['{d} (par défaut)', '{d} (the default)'],
  'writeFirst.byDefault': ['La durée par défaut', 'The default'],
  'writeFirst.hour': ['1 heure', '1 hour'],
  'writeFirst.hours': ['{n} heures', '{n} hours'],
  'writeFirst.day': ['1 jour', '1 day'],
  'writeFirst.days': ['{n} jours', '{n} days'],
  'writeFirst.next': ['Si le silence dure, {name} vous écrira vers {when}.', 'If it stays quiet, {name} will write to you around {when}.'],
  'writeFirst.offEverywhere': ['Pour l’instant, aucun personnage n’écrit en premier : c’est le réglage général.', 'For now no character writes first: that is the general setting.'],
  'writeFirst.toProfile': ['Le changer dans le profil', 'Change it in the profile'],
  'account.title': ['Compte', 'Account'],
  'account.changePassword': ['Changer de mot de passe', 'Change password'],
  'account.current': ['Mot de passe actuel', 'Current password'],
  'account.new': ['Nouveau mot de passe', 'New password'],
  'account.newHint': ['8 caractères au moins. Vos autres appareils seront déconnectés.', 'At least 8 characters. Your other devices will be signed out.'],
  'account.passwordChanged': ['Mot de passe changé. Vos autres appareils sont déconnectés.', 'Password changed. Your other devices are signed out.'],
  'account.export': ['Télécharger mes données', 'Download my data'],
  'account.everywhere': ['Se déconnecter partout', 'Sign out everywhere'],
  'account.signedOutEverywhere': ['Toutes vos sessions sont fermées.', 'Every session of yours has ended.'],
  'account.delete': ['Supprimer mon compte', 'Delete my account'],
  'account.deleteHint': ['Vos discussions, souvenirs, photos et personnages seront effacés pour de bon.', 'Your chats, memories, photos and characters will be erased for good.'],
  'account.confirmDelete': ['Supprimer votre compte et tout ce qu’il contient ? C’est définitif.', 'Delete your account and everything in it? This cannot be undone.'],
  'account.deleted': ['Votre compte a été supprimé.', 'Your account has been deleted.'],
  'err.offline': ['Vous êtes hors ligne. Dream réessaiera dès le retour du réseau.', 'You are offline. Dream will try again once the network is back.'],
  'err.rateLimited': ['Trop de demandes. Réessayez dans {n} s.', 'Too many requests. Try again in {n} s.'],
  'err.unavailable': ['Dream est momentanément indisponible. Réessayez dans un instant.', 'Dream is briefly unavailable. Try again in a moment.'],
  'err.server': ['Une erreur est survenue de notre côté. Réessayez.', 'Something went wrong on our side. Try again.'],
  'err.notFound': ['Introuvable.', 'Not found.'],
  'err.credentials': ['E-mail ou mot de passe incorrect.', 'Wrong email or password.'],
  'err.conflict': ['Cela a changé entre-temps. Rechargez la page et réessayez.', 'This changed in the meantime. Reload the page and try again.'],
  'err.stillWriting': ['Une réponse est encore en train de s’écrire. Attendez qu’elle soit finie.', 'A reply is still being written. Wait until it is finished.'],
  'err.nothingToAnswer': ['Il n’y a pas encore de message auquel répondre.', 'There is no message to answer yet.'],
  'err.nothingToContinue': ['Il n’y a pas encore de réponse à continuer.', 'There is no reply to continue yet.'],
  'err.tooManyCharacters': ['Vous avez déjà autant de personnages que permis. Supprimez-en un d’abord.', 'You already have as many characters as allowed. Delete one first.'],
  'err.tooManyPhotos': ['Des photos sont déjà en route. Attendez qu’elles arrivent.', 'Photos are already on their way. Wait for them to arrive.'],
  'err.charactersMessage': ['Seuls vos propres messages peuvent être modifiés.', 'Only your own messages can be changed.'],
  'err.emailTaken': ['Cet e-mail a déjà un compte. Connectez-vous plutôt.', 'This email already has an account. Sign in instead.'],
  'err.validation': ['Vérifiez le champ : {field}.', 'Check the field: {field}.'],
  'err.sessionEnded': ['Votre session a pris fin. Reconnectez-vous.', 'Your session ended. Please sign in again.'],
  'err.streamCut': ['La réponse a été interrompue. Nouvel essai…', 'The reply was cut. Trying again…'],
  'err.dismiss': ['Fermer le message', 'Dismiss'],
  'err.pageNotFound': ['Cette page n’existe pas.', 'This page does not exist.'],
  'err.home': ['Revenir à l’accueil', 'Back home'],
} as const satisfies Record<string, readonly [string, string]>;

export type Key = keyof typeof table;

function initial(): Lang {
  try {
    const saved = globalThis.localStorage?.getItem('dream.lang');
    if (saved === 'fr' || saved === 'en') return saved;
  } catch {
    /* storage refused: the default */
  }
  return 'fr';
}

export const i18n = $state({ lang: initial() as Lang });

export function setLang(lang: Lang): void {
  i18n.lang = lang;
  try {
    globalThis.localStorage?.setItem('dream.lang', lang);
  } catch {
    /* not kept: fine */
  }
  if (typeof document !== 'undefined') document.documentElement.lang = lang;
}

export function translate(lang: Lang, key: Key, vars: Record<string, string | number> = {}): string {
  const row = table[key] as readonly [string, string] | undefined;
  const text = row ? row[lang === 'en' ? 1 : 0] : key;
  return text.replace(/\{(\w+)\}/g, (_, name: string) => String(vars[name] ?? `{${name}}`));
}

/** The text of `key` in the current language. */
export function t(key: Key, vars?: Record<string, string | number>): string {
  return translate(i18n.lang, key, vars);
}

export function keys(): Key[] {
  return Object.keys(table) as Key[];
}

export function locale(): string {
  return i18n.lang === 'en' ? 'en-GB' : 'fr-FR';
}
